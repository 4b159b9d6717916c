/* The outbox: durable actions with sequence numbers, deduplication,
 * frequency caps and send windows.  See doc/outbox.md.
 *
 * State per db, created on first use and attached as a module, so that
 * every transaction's end publishes or discards what was staged in it.
 * Stored as records of the table "outbox" (JSON text):
 *   e:<seq, 20 digits>   an entry (pending or suppressed); deleted by its ack
 *   d:<n, 10 digits>     256 (or, the last one, fewer) identity hashes of
 *                        acknowledged entries, as hex
 *   c:<len>:<customer>:<channel>   the due times counted by the caps
 *   meta                 {"next_seq": N}, written with every ack
 */
#include "outbox/outbox-private.h"
#include "storage/storage-private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define OB_TABLE "outbox"
#define OB_CHUNK 256         /* hashes per d: record */
#define OB_RING_MAX 4096     /* due times kept per customer and channel */
#define OB_CAPS_PER_CHAN 8
#define OB_MAX_CAP 10000u
#define OB_MAX_PERIOD (INT64_C(3660) * 86400)
#define OB_TEXT_MAX 4096     /* step, state, action, params, variant */
#define OB_ZONES_MAX 4096    /* cached zone names (unknown ones included) */
#define OB_DELIVER_GROUP 256

enum { ST_GONE = 0, ST_PENDING = 1, ST_SUPPRESSED = 2 };

/* An entry's customer: the store's customer index, or OB_XID | an index
 * into the outbox's own copies of ids that were not the store's customers
 * when emitted. */
#define OB_XID 0x80000000u

typedef struct ob_entry {
    uint64_t seq;
    int64_t due, time;
    uint64_t run;
    uint64_t key;            /* identity hash */
    uint32_t cust;           /* store index, or OB_XID | xid index */
    uint32_t tup;            /* the entry's names: an index into tups */
    uint8_t status;          /* ST_* */
    uint8_t ack_staged;
} ob_entry;

/* journey, state, action, channel, params, variant: interned (0 = NULL) */
enum { F_JOURNEY, F_STATE, F_ACTION, F_CHANNEL, F_PARAMS, F_VARIANT, F_N };
typedef struct ob_tuple {
    uint32_t f[F_N];
} ob_tuple;

/* the tuple cache: the pointers an emit passed, and the tuple they had */
#define OB_TCACHE 64
typedef struct ob_tcache {
    const char *p[F_N];
    uint32_t tup;            /* 0: empty slot */
    bool stable;             /* put by an emit with stable_names */
} ob_tcache;

typedef struct ob_ring {     /* due times of the counted actions of a customer on a channel */
    char *cust;
    uint32_t chan;
    uint32_t n, cap;
    int64_t *t;              /* ascending */
} ob_ring;

typedef struct ob_undo {     /* a ring as it was before the transaction */
    uint32_t ring;
    uint32_t n;
    int64_t *t;              /* copy (NULL when n == 0) */
} ob_undo;

typedef struct ob_cap {
    uint32_t chan;
    uint32_t max;
    int64_t period;
} ob_cap;

typedef struct ob_window {
    uint32_t chan;
    int start, end;
} ob_window;

typedef struct ob_zone {
    char *name;
    uint64_t h;
    seg__tz *z;              /* NULL: unknown (the default zone is used) */
} ob_zone;

typedef struct seg__outbox {
    const seg__alloc *a;
    const seg__store *store; /* the db's customers (read only) */
    /* entries, ascending seq; [0, ncommitted) published */
    ob_entry *e;
    size_t n, cap, ncommitted, dead;
    uint64_t next_seq, committed_seq;
    /* ids of entries' customers that were not the store's, in entry order;
     * [0, nxcommitted) published */
    char **xids;
    size_t nxids, capxids, nxcommitted;
    /* interned strings, index 0 = NULL */
    char **strs;
    uint32_t nstrs, capstrs;
    uint32_t *stab;          /* open addressing: string index, 0 empty */
    uint32_t stabcap;
    /* interned tuples of names (index 0 unused) */
    ob_tuple *tups;
    uint32_t ntups, captups;
    uint32_t *ttab;          /* open addressing: tuple index, 0 empty */
    uint32_t ttabcap;
    ob_tcache tcache[OB_TCACHE];
    /* identity hashes of every entry ever queued (0: empty slot) */
    uint64_t *set;
    size_t setcap, setn;
    /* cap counters */
    ob_ring *rings;
    uint32_t nrings, caprings;
    uint32_t *rtab;          /* ring index + 1 */
    uint32_t rtabcap;
    /* the open transaction (its entries are [ncommitted, n)) */
    ob_undo *txundo;
    size_t ntxundo, captxundo;
    size_t *txacks;
    size_t ntxacks, captxacks;
    /* acknowledged hashes: the last d: record (tail), committed and staged */
    uint64_t tail[OB_CHUNK], stail[OB_CHUNK];
    uint32_t tailn, stailn;
    uint64_t tailidx, stailidx;
    bool staged_chunks;
    /* configuration (per open) */
    ob_cap *caps;
    uint32_t ncaps;
    ob_window *windows;
    uint32_t nwindows;
    char *zone_attr;
    ob_zone *zones;
    uint32_t nzones, capzones;
    const seg__tz *defzone;  /* NULL: UTC */
    seg_outbox_deliver_cb cb;
    void *cb_payload;
    char getbuf[SEG_ID_MAX + 1]; /* the customer id seg_outbox_get() returned */
    /* walks in progress (no compaction meanwhile); inside a delivery callback */
    unsigned walking;
    bool delivering;
} seg__outbox;

static void ob_txn_end(seg_db *db, void *state, bool committed);
static int ob_customer_gone(seg_db *db, void *state, uint32_t ci, const char *customer_id);
static const seg__module_ops ob_ops = { "outbox", NULL, ob_txn_end, ob_customer_gone };

/* ------------------------------------------------------------------ memory */

static int grow(const seg__alloc *a, void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return SEG_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = seg__realloc_array(a, *p, c, size);
    if (!q)
        return SEG_ENOMEM;
    *p = q;
    *cap = c;
    return SEG_OK;
}

/* Room for one more entry: by half again when large (less slack than
 * doubling; a large block's realloc moves no bytes with most allocators). */
static int grow_entries(seg__outbox *ob)
{
    if (ob->n < ob->cap)
        return SEG_OK;
    size_t c = ob->cap < 1024 ? (ob->cap ? ob->cap * 2 : 16) : ob->cap + ob->cap / 2;
    ob_entry *e = seg__realloc_array(ob->a, ob->e, c, sizeof *e);
    if (!e)
        return SEG_ENOMEM;
    ob->e = e;
    ob->cap = c;
    return SEG_OK;
}

static int grow32(const seg__alloc *a, void **p, uint32_t *cap, size_t need, size_t size)
{
    size_t c = *cap;
    int rc = grow(a, p, &c, need, size);
    if (rc == SEG_OK) {
        if (c > UINT32_MAX)
            return SEG_ENOMEM;
        *cap = (uint32_t)c;
    }
    return rc;
}

static char *dup_str(const seg__alloc *a, const char *s, size_t n)
{
    char *p = seg__malloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static uint64_t hash_str(const char *s, uint64_t seed)
{
    return seg__hash(s, strlen(s), seed);
}

/* ------------------------------------------------------- interned strings */

static const char *str_of(const seg__outbox *ob, uint32_t i)
{
    return i ? ob->strs[i] : NULL;
}

static uint32_t str_find(const seg__outbox *ob, const char *s, uint64_t h)
{
    if (!ob->stabcap)
        return 0;
    uint32_t mask = ob->stabcap - 1;
    for (uint32_t k = (uint32_t)h & mask;; k = (k + 1) & mask) {
        uint32_t i = ob->stab[k];
        if (!i || strcmp(ob->strs[i], s) == 0)
            return i;
    }
}

/* Intern s (NULL: 0).  SEG_OK or SEG_ENOMEM. */
static int str_intern(seg__outbox *ob, const char *s, uint32_t *out)
{
    *out = 0;
    if (!s)
        return SEG_OK;
    uint64_t h = hash_str(s, 7);
    uint32_t i = str_find(ob, s, h);
    if (i) {
        *out = i;
        return SEG_OK;
    }
    if (!ob->nstrs)
        ob->nstrs = 1; /* index 0 is NULL */
    if (grow32(ob->a, (void **)&ob->strs, &ob->capstrs, (size_t)ob->nstrs + 1, sizeof(char *)))
        return SEG_ENOMEM;
    if ((size_t)(ob->nstrs + 1) * 2 > ob->stabcap) {
        uint32_t nc = ob->stabcap ? ob->stabcap * 2 : 64;
        uint32_t *t = seg__calloc(ob->a, nc, sizeof *t);
        if (!t)
            return SEG_ENOMEM;
        for (uint32_t j = 1; j < ob->nstrs; j++) {
            uint32_t k = (uint32_t)hash_str(ob->strs[j], 7) & (nc - 1);
            while (t[k])
                k = (k + 1) & (nc - 1);
            t[k] = j;
        }
        seg__free(ob->a, ob->stab);
        ob->stab = t;
        ob->stabcap = nc;
    }
    char *c = dup_str(ob->a, s, strlen(s));
    if (!c)
        return SEG_ENOMEM;
    i = ob->nstrs++;
    ob->strs[i] = c;
    uint32_t k = (uint32_t)h & (ob->stabcap - 1);
    while (ob->stab[k])
        k = (k + 1) & (ob->stabcap - 1);
    ob->stab[k] = i;
    *out = i;
    return SEG_OK;
}

/* ------------------------------------------------------ interned tuples */

static uint64_t tup_hash(const ob_tuple *t)
{
    return seg__hash(t->f, sizeof t->f, 11);
}

/* Intern tuple t.  SEG_OK or SEG_ENOMEM. */
static int tup_intern(seg__outbox *ob, const ob_tuple *t, uint32_t *out)
{
    uint64_t h = tup_hash(t);
    if (ob->ttabcap) {
        uint32_t mask = ob->ttabcap - 1;
        for (uint32_t k = (uint32_t)h & mask; ob->ttab[k]; k = (k + 1) & mask)
            if (memcmp(ob->tups[ob->ttab[k]].f, t->f, sizeof t->f) == 0) {
                *out = ob->ttab[k];
                return SEG_OK;
            }
    }
    if (!ob->ntups)
        ob->ntups = 1; /* index 0: none */
    if (grow32(ob->a, (void **)&ob->tups, &ob->captups, (size_t)ob->ntups + 1, sizeof *ob->tups))
        return SEG_ENOMEM;
    if ((size_t)(ob->ntups + 1) * 2 > ob->ttabcap) {
        uint32_t nc = ob->ttabcap ? ob->ttabcap * 2 : 64;
        uint32_t *t2 = seg__calloc(ob->a, nc, sizeof *t2);
        if (!t2)
            return SEG_ENOMEM;
        for (uint32_t j = 1; j < ob->ntups; j++) {
            uint32_t k = (uint32_t)tup_hash(&ob->tups[j]) & (nc - 1);
            while (t2[k])
                k = (k + 1) & (nc - 1);
            t2[k] = j;
        }
        seg__free(ob->a, ob->ttab);
        ob->ttab = t2;
        ob->ttabcap = nc;
    }
    uint32_t i = ob->ntups++;
    ob->tups[i] = *t;
    uint32_t k = (uint32_t)h & (ob->ttabcap - 1);
    while (ob->ttab[k])
        k = (k + 1) & (ob->ttabcap - 1);
    ob->ttab[k] = i;
    *out = i;
    return SEG_OK;
}

/* Intern the six names (state and params: NULL is ""). */
static int names_intern(seg__outbox *ob, const char *const p[F_N], uint32_t *out)
{
    ob_tuple t;
    for (int f = 0; f < F_N; f++)
        if (str_intern(ob, p[f], &t.f[f]) != SEG_OK)
            return SEG_ENOMEM;
    return tup_intern(ob, &t, out);
}

static const char *tup_str(const seg__outbox *ob, uint32_t tup, int field)
{
    return str_of(ob, ob->tups[tup].f[field]);
}

/* The tuple cache's slot for the pointers p. */
static unsigned tc_slot(const char *const p[F_N])
{
    uint64_t h = 0;
    for (int f = 0; f < F_N; f++)
        h = (h ^ (uint64_t)(uintptr_t)p[f]) * UINT64_C(0x9e3779b97f4a7c15);
    return (unsigned)(h >> 58) & (OB_TCACHE - 1);
}

/* The tuple cached for p whose strings are still those of the tuple (the
 * caller may have rewritten a buffer since, unless the text is stable: put
 * and asked for with stable_names), or 0. */
static uint32_t tc_find(const seg__outbox *ob, const char *const p[F_N], bool stable)
{
    const ob_tcache *c = &ob->tcache[tc_slot(p)];
    if (!c->tup)
        return 0;
    if (memcmp(c->p, p, sizeof c->p) != 0)
        return 0;
    if (stable && c->stable)
        return c->tup;
    const ob_tuple *t = &ob->tups[c->tup];
    for (int f = 0; f < F_N; f++) {
        const char *s = str_of(ob, t->f[f]);
        if (s != p[f] && (!s || !p[f] || strcmp(s, p[f]) != 0))
            return 0;
    }
    return c->tup;
}

static void tc_put(seg__outbox *ob, const char *const p[F_N], uint32_t tup, bool stable)
{
    ob_tcache *c = &ob->tcache[tc_slot(p)];
    memcpy(c->p, p, sizeof c->p);
    c->tup = tup;
    c->stable = stable;
}

/* ------------------------------------------------------------- customers */

/* The id of entry x's customer, NUL-terminated (copied into buf when it is
 * the store's). */
static const char *entry_cust(const seg__outbox *ob, const ob_entry *x, char *buf)
{
    if (x->cust & OB_XID)
        return ob->xids[x->cust & ~OB_XID];
    seg__str id = seg__cust_id(ob->store, x->cust);
    memcpy(buf, id.p, id.n);
    buf[id.n] = '\0';
    return buf;
}

/* Is customer_id (n bytes) the id of the store's customer ci? */
static bool store_has(const seg__outbox *ob, uint32_t ci, const char *customer_id, size_t n)
{
    if (ci >= ob->store->ncusts || ci >= OB_XID || !ob->store->custs[ci].id)
        return false;
    seg__str id = seg__cust_id(ob->store, ci);
    return id.n == n && memcmp(id.p, customer_id, n) == 0;
}

/* The store index of customer_id (valid) when it is a customer, else
 * SEG__NONE. */
static uint32_t store_find(const seg__outbox *ob, const char *customer_id)
{
    size_t n = strlen(customer_id);
    seg__str id = { customer_id, n };
    uint32_t ci = seg__cust_find(ob->store, id);
    return ci != SEG__NONE && store_has(ob, ci, customer_id, n) ? ci : SEG__NONE;
}

/* Entry x's customer as the store index or a copy of customer_id (the
 * copy appended to xids; room made by the caller).  SEG_OK or SEG_ENOMEM. */
static int entry_set_cust(seg__outbox *ob, ob_entry *x, const char *customer_id, uint32_t ci)
{
    if (ci != SEG__NONE) {
        x->cust = ci;
        return SEG_OK;
    }
    if (ob->nxids >= OB_XID ||
        grow(ob->a, (void **)&ob->xids, &ob->capxids, ob->nxids + 1, sizeof *ob->xids))
        return SEG_ENOMEM;
    char *c = dup_str(ob->a, customer_id, strlen(customer_id));
    if (!c)
        return SEG_ENOMEM;
    x->cust = OB_XID | (uint32_t)ob->nxids;
    ob->xids[ob->nxids++] = c;
    return SEG_OK;
}

/* Is entry x's customer the one of (ci, customer_id)? */
static bool entry_is_cust(const seg__outbox *ob, const ob_entry *x, uint32_t ci,
                          const char *customer_id)
{
    if (x->cust & OB_XID)
        return strcmp(ob->xids[x->cust & ~OB_XID], customer_id) == 0;
    return x->cust == ci;
}

/* ------------------------------------------------------------ the key set */

static size_t set_slot(const seg__outbox *ob, uint64_t key)
{
    size_t mask = ob->setcap - 1;
    size_t k = (size_t)(key ^ (key >> 29)) & mask;
    while (ob->set[k] && ob->set[k] != key)
        k = (k + 1) & mask;
    return k;
}

/* Room for `more` keys (SEG_OK or SEG_ENOMEM). */
static int set_reserve(seg__outbox *ob, size_t more)
{
    if ((ob->setn + more) * 10 < ob->setcap * 7)
        return SEG_OK;
    size_t nc = ob->setcap ? ob->setcap : 64;
    while ((ob->setn + more) * 10 >= nc * 7)
        nc *= 2;
    uint64_t *old = ob->set;
    size_t oc = ob->setcap;
    uint64_t *t = seg__calloc(ob->a, nc, sizeof *t);
    if (!t)
        return SEG_ENOMEM;
    ob->set = t;
    ob->setcap = nc;
    for (size_t k = 0; k < oc; k++)
        if (old[k])
            ob->set[set_slot(ob, old[k])] = old[k];
    seg__free(ob->a, old);
    return SEG_OK;
}

static void set_add(seg__outbox *ob, uint64_t key) /* after set_reserve */
{
    size_t k = set_slot(ob, key);
    if (!ob->set[k]) {
        ob->set[k] = key;
        ob->setn++;
    }
}

static void set_del(seg__outbox *ob, uint64_t key)
{
    if (!ob->setcap)
        return;
    size_t mask = ob->setcap - 1, k = set_slot(ob, key);
    if (ob->set[k] != key)
        return;
    ob->set[k] = 0;
    ob->setn--;
    /* backward shift: move up the keys of the cluster that probed past k */
    for (size_t j = (k + 1) & mask; ob->set[j]; j = (j + 1) & mask) {
        size_t home = (size_t)(ob->set[j] ^ (ob->set[j] >> 29)) & mask;
        bool between = k <= j ? (home > k && home <= j) : (home > k || home <= j);
        if (!between) {
            ob->set[k] = ob->set[j];
            ob->set[j] = 0;
            k = j;
        }
    }
}

/* The identity of an action: customer, journey, run, step. */
static uint64_t identity(const char *cust, size_t ncust, const char *journey, uint64_t run,
                         const char *step, size_t nstep)
{
    uint8_t r[8] = { (uint8_t)run,         (uint8_t)(run >> 8),  (uint8_t)(run >> 16),
                     (uint8_t)(run >> 24), (uint8_t)(run >> 32), (uint8_t)(run >> 40),
                     (uint8_t)(run >> 48), (uint8_t)(run >> 56) };
    uint64_t h = seg__hash(cust, ncust, UINT64_C(0x6f7574626f78));
    h = hash_str(journey, h);
    h = seg__hash(r, 8, h);
    h = seg__hash(step, nstep, h);
    return h ? h : 1;
}

/* ------------------------------------------------------------------ rings */

static uint64_t ring_hash(const char *cust, uint32_t chan)
{
    return hash_str(cust, 0x1234567u + chan);
}

static uint32_t ring_find(const seg__outbox *ob, const char *cust, uint32_t chan, uint64_t h)
{
    if (!ob->rtabcap)
        return UINT32_MAX;
    uint32_t mask = ob->rtabcap - 1;
    for (uint32_t k = (uint32_t)h & mask;; k = (k + 1) & mask) {
        uint32_t i = ob->rtab[k];
        if (!i)
            return UINT32_MAX;
        const ob_ring *r = &ob->rings[i - 1];
        if (r->chan == chan && strcmp(r->cust, cust) == 0)
            return i - 1;
    }
}

/* The ring of (cust, chan), created empty if needed. */
static int ring_get(seg__outbox *ob, const char *cust, uint32_t chan, uint32_t *out)
{
    uint64_t h = ring_hash(cust, chan);
    uint32_t i = ring_find(ob, cust, chan, h);
    if (i != UINT32_MAX) {
        *out = i;
        return SEG_OK;
    }
    if (grow32(ob->a, (void **)&ob->rings, &ob->caprings, (size_t)ob->nrings + 1,
               sizeof *ob->rings))
        return SEG_ENOMEM;
    if ((size_t)(ob->nrings + 1) * 2 > ob->rtabcap) {
        uint32_t nc = ob->rtabcap ? ob->rtabcap * 2 : 64;
        uint32_t *t = seg__calloc(ob->a, nc, sizeof *t);
        if (!t)
            return SEG_ENOMEM;
        for (uint32_t j = 0; j < ob->nrings; j++) {
            uint32_t k = (uint32_t)ring_hash(ob->rings[j].cust, ob->rings[j].chan) & (nc - 1);
            while (t[k])
                k = (k + 1) & (nc - 1);
            t[k] = j + 1;
        }
        seg__free(ob->a, ob->rtab);
        ob->rtab = t;
        ob->rtabcap = nc;
    }
    char *c = dup_str(ob->a, cust, strlen(cust));
    if (!c)
        return SEG_ENOMEM;
    ob_ring *r = &ob->rings[ob->nrings];
    memset(r, 0, sizeof *r);
    r->cust = c;
    r->chan = chan;
    uint32_t k = (uint32_t)h & (ob->rtabcap - 1);
    while (ob->rtab[k])
        k = (k + 1) & (ob->rtabcap - 1);
    ob->rtab[k] = ++ob->nrings;
    *out = ob->nrings - 1;
    return SEG_OK;
}

/* ------------------------------------------------------------------- JSON */

typedef seg__text jbuf;

static void jb_str(jbuf *b, const char *s)
{
    if (!s) {
        seg__text_puts(b, "null");
        return;
    }
    seg__text_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        seg__text_put(b, run, (size_t)(s - run));
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else
            snprintf(esc, sizeof esc, "\\u%04x", c);
        seg__text_puts(b, esc);
        run = s + 1;
    }
    seg__text_put(b, run, (size_t)(s - run));
    seg__text_put(b, "\"", 1);
}

static void jb_i64(jbuf *b, int64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, v);
    seg__text_puts(b, t);
}

static void jb_key(jbuf *b, const char *k)
{
    seg__text_put(b, b->n > 1 ? ",\"" : "\"", b->n > 1 ? 2 : 1);
    seg__text_puts(b, k);
    seg__text_put(b, "\":", 2);
}

/* A field of a record being read. */
typedef struct jfield {
    const char *name;
    char kind;          /* after parsing: 0 absent, 'n' null, 's', 'i', 'a' */
    const char *s;      /* 's': unescaped, NUL-terminated (in the scratch) */
    int64_t i;
    size_t arr_at, narr; /* 'a': integers in the array buffer */
} jfield;

typedef struct jreader {
    const char *p, *e;
    char *scratch;      /* at least as long as the input */
    size_t sused;
    int64_t *arr;
    size_t narr, caparr;
    const seg__alloc *a;
} jreader;

static void jr_ws(jreader *r)
{
    while (r->p < r->e && (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r'))
        r->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool jr_u4(jreader *r, uint32_t *out)
{
    if (r->e - r->p < 4)
        return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(r->p[k]);
        if (h < 0)
            return false;
        v = v << 4 | (uint32_t)h;
    }
    r->p += 4;
    *out = v;
    return true;
}

/* a string at r->p (after the quote is checked), unescaped into the scratch */
static bool jr_string(jreader *r, const char **out)
{
    if (r->p >= r->e || *r->p != '"')
        return false;
    r->p++;
    char *o = r->scratch + r->sused, *start = o;
    while (r->p < r->e && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p++;
        if (c < 0x20)
            return false;
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        if (r->p >= r->e)
            return false;
        c = (unsigned char)*r->p++;
        switch (c) {
        case '"': case '\\': case '/': *o++ = (char)c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (!jr_u4(r, &cp))
                return false;
            if (cp >= 0xd800 && cp < 0xdc00) {
                uint32_t lo;
                if (r->e - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
                    return false;
                r->p += 2;
                if (!jr_u4(r, &lo) || lo < 0xdc00 || lo >= 0xe000)
                    return false;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return false;
            }
            if (cp == 0)
                return false;
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xc0 | cp >> 6);
                *o++ = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xe0 | cp >> 12);
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *o++ = (char)(0x80 | (cp & 0x3f));
            } else {
                *o++ = (char)(0xf0 | cp >> 18);
                *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *o++ = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            return false;
        }
    }
    if (r->p >= r->e)
        return false;
    r->p++;
    *o++ = '\0';
    r->sused += (size_t)(o - start);
    if (!seg__utf8_valid(start, strlen(start)))
        return false;
    *out = start;
    return true;
}

static bool jr_int(jreader *r, int64_t *out)
{
    const char *q = r->p;
    if (q < r->e && *q == '-')
        q++;
    while (q < r->e && *q >= '0' && *q <= '9')
        q++;
    if (q == r->p || (q < r->e && (*q == '.' || *q == 'e' || *q == 'E')))
        return false;
    if (seg__parse_int64(r->p, (size_t)(q - r->p), out) != SEG_OK)
        return false;
    r->p = q;
    return true;
}

static bool jr_lit(jreader *r, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(r->e - r->p) < n || memcmp(r->p, lit, n) != 0)
        return false;
    r->p += n;
    return true;
}

/* Parse a flat object: strings, integers, null, booleans, arrays of
 * integers.  Known fields are filled; others skipped. */
static bool jr_object(jreader *r, jfield *f, size_t nf)
{
    for (size_t k = 0; k < nf; k++)
        f[k].kind = 0;
    jr_ws(r);
    if (r->p >= r->e || *r->p++ != '{')
        return false;
    jr_ws(r);
    if (r->p < r->e && *r->p == '}') {
        r->p++;
        goto done;
    }
    for (;;) {
        const char *name;
        jr_ws(r);
        if (!jr_string(r, &name))
            return false;
        jr_ws(r);
        if (r->p >= r->e || *r->p++ != ':')
            return false;
        jr_ws(r);
        jfield tmp = { NULL, 0, NULL, 0, 0, 0 }, *dst = &tmp;
        for (size_t k = 0; k < nf; k++)
            if (strcmp(f[k].name, name) == 0) {
                if (f[k].kind)
                    return false; /* twice */
                dst = &f[k];
            }
        if (r->p >= r->e)
            return false;
        if (*r->p == '"') {
            dst->kind = 's';
            if (!jr_string(r, &dst->s))
                return false;
        } else if (*r->p == 'n') {
            dst->kind = 'n';
            if (!jr_lit(r, "null"))
                return false;
        } else if (*r->p == 't' || *r->p == 'f') {
            dst->kind = 'i';
            dst->i = *r->p == 't';
            if (!jr_lit(r, *r->p == 't' ? "true" : "false"))
                return false;
        } else if (*r->p == '[') {
            r->p++;
            dst->kind = 'a';
            dst->arr_at = r->narr;
            dst->narr = 0;
            jr_ws(r);
            if (r->p < r->e && *r->p == ']') {
                r->p++;
            } else {
                for (;;) {
                    int64_t v;
                    jr_ws(r);
                    if (!jr_int(r, &v))
                        return false;
                    if (grow(r->a, (void **)&r->arr, &r->caparr, r->narr + 1, sizeof(int64_t)))
                        return false;
                    r->arr[r->narr++] = v;
                    dst->narr++;
                    jr_ws(r);
                    if (r->p < r->e && *r->p == ',') {
                        r->p++;
                        continue;
                    }
                    if (r->p < r->e && *r->p == ']') {
                        r->p++;
                        break;
                    }
                    return false;
                }
            }
        } else {
            dst->kind = 'i';
            if (!jr_int(r, &dst->i))
                return false;
        }
        jr_ws(r);
        if (r->p < r->e && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->e && *r->p == '}') {
            r->p++;
            break;
        }
        return false;
    }
done:
    jr_ws(r);
    return r->p == r->e;
}

static bool hex64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int k = 0; k < 16; k++) {
        int h = hexval(s[k]);
        if (h < 0)
            return false;
        v = v << 4 | (uint64_t)h;
    }
    *out = v;
    return true;
}

static void put_hex64(char *o, uint64_t v)
{
    static const char hx[] = "0123456789abcdef";
    for (int k = 15; k >= 0; k--) {
        o[k] = hx[v & 15];
        v >>= 4;
    }
}

/* ------------------------------------------------------------- the state */

static seg__outbox *ob_find(seg_db *db)
{
    for (unsigned i = 0; i < db->nmodules; i++)
        if (db->modules[i].ops == &ob_ops)
            return db->modules[i].state;
    return NULL;
}

static void ob_destroy(seg__outbox *ob)
{
    if (!ob)
        return;
    const seg__alloc *a = ob->a;
    for (size_t k = 0; k < ob->nxids; k++)
        seg__free(a, ob->xids[k]);
    seg__free(a, ob->xids);
    seg__free(a, ob->e);
    for (uint32_t k = 1; k < ob->nstrs; k++)
        seg__free(a, ob->strs[k]);
    seg__free(a, ob->strs);
    seg__free(a, ob->stab);
    seg__free(a, ob->tups);
    seg__free(a, ob->ttab);
    seg__free(a, ob->set);
    for (uint32_t k = 0; k < ob->nrings; k++) {
        seg__free(a, ob->rings[k].cust);
        seg__free(a, ob->rings[k].t);
    }
    seg__free(a, ob->rings);
    seg__free(a, ob->rtab);
    for (size_t k = 0; k < ob->ntxundo; k++)
        seg__free(a, ob->txundo[k].t);
    seg__free(a, ob->txundo);
    seg__free(a, ob->txacks);
    seg__free(a, ob->caps);
    seg__free(a, ob->windows);
    seg__free(a, ob->zone_attr);
    for (uint32_t k = 0; k < ob->nzones; k++) {
        seg__free(a, ob->zones[k].name);
        seg__tz_free(a, ob->zones[k].z);
    }
    seg__free(a, ob->zones);
    seg__free(a, ob);
}

void seg__outbox_forget_names(seg_db *db)
{
    seg__outbox *ob = db ? ob_find(db) : NULL;
    if (ob)
        memset(ob->tcache, 0, sizeof ob->tcache);
}

void seg__outbox_free(seg_db *db)
{
    seg__outbox *ob = ob_find(db);
    if (ob) {
        seg__module_detach(db, ob);
        ob_destroy(ob);
    }
}

/* --- load --- */

typedef struct load_ctx {
    seg_db *db;
    seg__outbox *ob;
    jreader r;
    char *scratch;
    size_t capscratch;
    uint64_t meta_next;
    bool have_tail;
    uint64_t max_chunk;
    bool any_chunk;
} load_ctx;

static int load_bad(load_ctx *c, const char *key, const char *what)
{
    return seg__error(c->db, SEG_ESTORAGE, "outbox: stored record '%s': %s", key, what);
}

/* f: seq status due time customer journey run step state action channel
 * params key variant */
static int load_entry(load_ctx *c, const char *key, jfield *f)
{
    seg__outbox *ob = c->ob;
    for (int k = 0; k < 14; k++) {
        char want = (k == 0 || k == 2 || k == 3 || k == 6) ? 'i' : 's';
        bool nullable = k == 10 || k == 13;
        if (f[k].kind != want && !(nullable && f[k].kind == 'n'))
            return load_bad(c, key, f[k].name);
    }
    uint64_t hkey;
    if (f[0].i < 1 || f[6].i < 1 || strlen(f[12].s) != 16 || !hex64(f[12].s, &hkey) || !hkey)
        return load_bad(c, key, "bad seq, run or key");
    uint8_t status = strcmp(f[1].s, "pending") == 0      ? ST_PENDING
                     : strcmp(f[1].s, "suppressed") == 0 ? ST_SUPPRESSED
                                                         : ST_GONE;
    if (status == ST_GONE)
        return load_bad(c, key, "bad status");
    if (grow_entries(ob) ||
        set_reserve(ob, 1))
        return seg__error(c->db, SEG_ENOMEM, "out of memory");
    ob_entry x;
    memset(&x, 0, sizeof x);
    x.seq = (uint64_t)f[0].i;
    x.status = status;
    x.due = f[2].i;
    x.time = f[3].i;
    x.run = (uint64_t)f[6].i;
    x.key = hkey;
    const char *names[F_N] = { f[5].s, f[8].s, f[9].s, f[10].kind == 's' ? f[10].s : NULL,
                               f[11].s, f[13].kind == 's' ? f[13].s : NULL };
    if (names_intern(ob, names, &x.tup) != SEG_OK ||
        entry_set_cust(ob, &x, f[4].s, store_find(ob, f[4].s)) != SEG_OK)
        return seg__error(c->db, SEG_ENOMEM, "out of memory");
    ob->e[ob->n++] = x;
    set_add(ob, hkey);
    if (x.seq >= ob->next_seq)
        ob->next_seq = x.seq + 1;
    return SEG_OK;
}

static int load_record(void *ctx, const char *key, const void *data, size_t len)
{
    load_ctx *c = ctx;
    seg__outbox *ob = c->ob;
    if (len + 1 > c->capscratch) {
        size_t cap = c->capscratch;
        if (grow(ob->a, (void **)&c->scratch, &cap, len + 1, 1))
            return seg__error(c->db, SEG_ENOMEM, "out of memory");
        c->capscratch = cap;
    }
    c->r.p = data;
    c->r.e = (const char *)data + len;
    c->r.scratch = c->scratch;
    c->r.sused = 0;
    c->r.narr = 0;
    if (strncmp(key, "e:", 2) == 0) {
        jfield f[14] = {
            { "seq", 0, NULL, 0, 0, 0 },      { "status", 0, NULL, 0, 0, 0 },
            { "due", 0, NULL, 0, 0, 0 },      { "time", 0, NULL, 0, 0, 0 },
            { "customer", 0, NULL, 0, 0, 0 }, { "journey", 0, NULL, 0, 0, 0 },
            { "run", 0, NULL, 0, 0, 0 },      { "step", 0, NULL, 0, 0, 0 },
            { "state", 0, NULL, 0, 0, 0 },    { "action", 0, NULL, 0, 0, 0 },
            { "channel", 0, NULL, 0, 0, 0 },  { "params", 0, NULL, 0, 0, 0 },
            { "key", 0, NULL, 0, 0, 0 },      { "variant", 0, NULL, 0, 0, 0 },
        };
        if (!jr_object(&c->r, f, 14))
            return load_bad(c, key, "not a valid entry");
        return load_entry(c, key, f);
    }
    if (strncmp(key, "d:", 2) == 0) {
        jfield f[2] = { { "n", 0, NULL, 0, 0, 0 }, { "keys", 0, NULL, 0, 0, 0 } };
        int64_t idx;
        if (!jr_object(&c->r, f, 2) || f[0].kind != 'i' || f[1].kind != 's' || f[0].i < 1 ||
            f[0].i > OB_CHUNK || strlen(f[1].s) != (size_t)f[0].i * 16 ||
            seg__parse_int64(key + 2, strlen(key + 2), &idx) != SEG_OK || idx < 0)
            return load_bad(c, key, "not a valid list of acknowledged actions");
        uint64_t keys[OB_CHUNK];
        uint32_t n = (uint32_t)f[0].i;
        for (uint32_t k = 0; k < n; k++)
            if (!hex64(f[1].s + 16 * k, &keys[k]) || !keys[k])
                return load_bad(c, key, "bad hash");
        if (set_reserve(ob, n))
            return seg__error(c->db, SEG_ENOMEM, "out of memory");
        for (uint32_t k = 0; k < n; k++)
            set_add(ob, keys[k]);
        if (!c->any_chunk || (uint64_t)idx > c->max_chunk) {
            c->any_chunk = true;
            c->max_chunk = (uint64_t)idx;
            memcpy(ob->tail, keys, n * sizeof keys[0]);
            ob->tailn = n;
        }
        return SEG_OK;
    }
    if (strncmp(key, "c:", 2) == 0) {
        jfield f[3] = { { "customer", 0, NULL, 0, 0, 0 }, { "channel", 0, NULL, 0, 0, 0 },
                        { "due", 0, NULL, 0, 0, 0 } };
        if (!jr_object(&c->r, f, 3) || f[0].kind != 's' || f[1].kind != 's' ||
            f[2].kind != 'a' || f[2].narr > OB_RING_MAX)
            return load_bad(c, key, "not a valid cap counter");
        uint32_t chan, ri;
        if (str_intern(ob, f[1].s, &chan) || ring_get(ob, f[0].s, chan, &ri))
            return seg__error(c->db, SEG_ENOMEM, "out of memory");
        ob_ring *r = &ob->rings[ri];
        size_t cap = r->cap;
        if (grow(ob->a, (void **)&r->t, &cap, f[2].narr ? f[2].narr : 1, sizeof(int64_t)))
            return seg__error(c->db, SEG_ENOMEM, "out of memory");
        r->cap = (uint32_t)cap;
        for (size_t k = 0; k < f[2].narr; k++) {
            r->t[k] = c->r.arr[f[2].arr_at + k];
            if (k && r->t[k] < r->t[k - 1])
                return load_bad(c, key, "due times out of order");
        }
        r->n = (uint32_t)f[2].narr;
        return SEG_OK;
    }
    if (strcmp(key, "meta") == 0) {
        jfield f[1] = { { "next_seq", 0, NULL, 0, 0, 0 } };
        if (!jr_object(&c->r, f, 1) || f[0].kind != 'i' || f[0].i < 1)
            return load_bad(c, key, "not a valid meta record");
        c->meta_next = (uint64_t)f[0].i;
        return SEG_OK;
    }
    return load_bad(c, key, "unknown kind of record");
}

static int cmp_seq(const void *x, const void *y)
{
    const ob_entry *a = x, *b = y;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int ob_get(seg_db *db, seg__outbox **out)
{
    *out = ob_find(db);
    if (*out)
        return SEG_OK;
    const seg__alloc *a = seg__db_alloc(db);
    seg__outbox *ob = seg__calloc(a, 1, sizeof *ob);
    if (!ob)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    ob->a = a;
    ob->store = &db->store;
    ob->next_seq = 1;
    ob->zone_attr = dup_str(a, "timezone", 8);
    if (!ob->zone_attr) {
        ob_destroy(ob);
        return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    load_ctx c;
    memset(&c, 0, sizeof c);
    c.db = db;
    c.ob = ob;
    c.r.a = a;
    int rc = seg__st_load_records(db, OB_TABLE, load_record, &c);
    seg__free(a, c.scratch);
    seg__free(a, c.r.arr);
    if (rc == SEG_OK) {
        if (ob->n)
            qsort(ob->e, ob->n, sizeof *ob->e, cmp_seq);
        for (size_t k = 1; k < ob->n; k++)
            if (ob->e[k].seq == ob->e[k - 1].seq) {
                rc = seg__error(db, SEG_ESTORAGE, "outbox: two stored entries have seq %" PRIu64,
                                ob->e[k].seq);
                break;
            }
    }
    if (rc == SEG_OK && ob->nxids) {
        /* the copied ids in entry order (compaction keeps them so) */
        char **nx = seg__malloc(a, ob->nxids * sizeof *nx);
        if (!nx) {
            rc = seg__error(db, SEG_ENOMEM, "out of memory");
        } else {
            size_t w = 0;
            for (size_t k = 0; k < ob->n; k++)
                if (ob->e[k].cust & OB_XID) {
                    nx[w] = ob->xids[ob->e[k].cust & ~OB_XID];
                    ob->e[k].cust = OB_XID | (uint32_t)w++;
                }
            seg__free(a, ob->xids);
            ob->xids = nx;
            ob->capxids = ob->nxids;
        }
    }
    if (rc == SEG_OK) {
        ob->nxcommitted = ob->nxids;
        if (c.meta_next > ob->next_seq)
            ob->next_seq = c.meta_next;
        ob->committed_seq = ob->next_seq;
        ob->ncommitted = ob->n;
        if (c.any_chunk) {
            ob->tailidx = ob->tailn == OB_CHUNK ? c.max_chunk + 1 : c.max_chunk;
            if (ob->tailn == OB_CHUNK)
                ob->tailn = 0;
        }
        rc = seg__module_attach(db, &ob_ops, ob);
    }
    if (rc != SEG_OK) {
        ob_destroy(ob);
        return rc;
    }
    *out = ob;
    return SEG_OK;
}

/* An outbox call from the public API: the state, or an error. */
static int ob_enter(seg_db *db, seg__outbox **out)
{
    *out = NULL;
    seg__error_clear(db);
    int rc = ob_get(db, out);
    if (rc != SEG_OK)
        return rc;
    if ((*out)->delivering) {
        *out = NULL;
        return seg__error(db, SEG_EMISUSE,
                          "outbox: not allowed inside the delivery callback");
    }
    return SEG_OK;
}

int seg__outbox_load(seg_db *db)
{
    seg__outbox *ob;
    return ob_get(db, &ob);
}

/* ---------------------------------------------------------- transactions */

static void compact(seg__outbox *ob)
{
    if (ob->walking || ob->n != ob->ncommitted || ob->dead < 64 || ob->dead * 2 < ob->n)
        return;
    size_t w = 0, wx = 0;
    for (size_t k = 0; k < ob->n; k++) {
        ob_entry *x = &ob->e[k];
        if (x->status == ST_GONE) {
            if (x->cust & OB_XID)
                seg__free(ob->a, ob->xids[x->cust & ~OB_XID]);
            continue;
        }
        if (x->cust & OB_XID) {
            ob->xids[wx] = ob->xids[x->cust & ~OB_XID];
            x->cust = OB_XID | (uint32_t)wx++;
        }
        ob->e[w++] = *x;
    }
    ob->n = ob->ncommitted = w;
    ob->nxids = ob->nxcommitted = wx;
    ob->dead = 0;
    /* give back what a drained queue no longer needs */
    if (ob->cap > 64 && ob->n < ob->cap / 4) {
        size_t c = ob->n * 2 > 64 ? ob->n * 2 : 64;
        ob_entry *e = seg__realloc_array(ob->a, ob->e, c, sizeof *e);
        if (e) {
            ob->e = e;
            ob->cap = c;
        }
    }
}

static void ob_txn_end(seg_db *db, void *state, bool committed)
{
    SEG_UNUSED(db);
    seg__outbox *ob = state;
    if (committed) {
        ob->ncommitted = ob->n;
        ob->nxcommitted = ob->nxids;
        ob->committed_seq = ob->next_seq;
        for (size_t k = 0; k < ob->ntxacks; k++) {
            ob_entry *x = &ob->e[ob->txacks[k]];
            x->status = ST_GONE;
            x->ack_staged = 0;
            ob->dead++;
        }
        if (ob->staged_chunks) {
            memcpy(ob->tail, ob->stail, ob->stailn * sizeof ob->tail[0]);
            ob->tailn = ob->stailn;
            ob->tailidx = ob->stailidx;
        }
        for (size_t k = 0; k < ob->ntxundo; k++)
            seg__free(ob->a, ob->txundo[k].t);
    } else {
        for (size_t k = ob->ncommitted; k < ob->n; k++)
            set_del(ob, ob->e[k].key);
        for (size_t k = ob->nxcommitted; k < ob->nxids; k++)
            seg__free(ob->a, ob->xids[k]);
        ob->n = ob->ncommitted;
        ob->nxids = ob->nxcommitted;
        ob->next_seq = ob->committed_seq;
        for (size_t k = ob->ntxundo; k-- > 0;) {
            /* (latest first: each undo holds the ring as it was before
             * its emit; the arrays are swapped back, never copied) */
            ob_undo *u = &ob->txundo[k];
            ob_ring *r = &ob->rings[u->ring];
            seg__free(ob->a, r->t);
            r->t = u->t;
            r->n = r->cap = u->n;
        }
        for (size_t k = 0; k < ob->ntxacks; k++)
            ob->e[ob->txacks[k]].ack_staged = 0;
    }
    ob->ntxundo = ob->ntxacks = 0;
    ob->staged_chunks = false;
    compact(ob);
}

/* ------------------------------------------------------------ time zones */

/* The cached zone `name`: SEG_OK with *z (NULL when the zone is unknown:
 * then *code_out tells why), or SEG_ENOMEM. */
static int zone_get(seg_db *db, seg__outbox *ob, const char *name, const seg__tz **z,
                    int *code_out)
{
    *z = NULL;
    *code_out = SEG_OK;
    uint64_t h = hash_str(name, 99);
    for (uint32_t k = 0; k < ob->nzones; k++)
        if (ob->zones[k].h == h && strcmp(ob->zones[k].name, name) == 0) {
            *z = ob->zones[k].z;
            *code_out = *z ? SEG_OK : SEG_ENOTFOUND;
            return SEG_OK;
        }
    seg__tz *nz = NULL;
    int rc = seg__tz_load(&nz, db, name);
    if (rc == SEG_ENOMEM)
        return rc;
    *code_out = rc;
    if (ob->nzones >= OB_ZONES_MAX && !nz)
        return SEG_OK; /* (not cached: too many unknown names) */
    char *c = dup_str(ob->a, name, strlen(name));
    if (!c || grow32(ob->a, (void **)&ob->zones, &ob->capzones, (size_t)ob->nzones + 1,
                     sizeof *ob->zones)) {
        seg__free(ob->a, c);
        seg__tz_free(ob->a, nz);
        return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    ob_zone *e = &ob->zones[ob->nzones++];
    e->name = c;
    e->h = h;
    e->z = nz;
    *z = nz;
    return SEG_OK;
}

/* The zone of a customer: their attribute, else the default. */
static int customer_zone(seg_db *db, seg__outbox *ob, const char *cust, const seg__tz **z)
{
    *z = ob->defzone;
    seg_value v;
    int rc = seg_customer_get_attr(&v, db, cust, ob->zone_attr);
    seg__error_clear(db);
    if (rc != SEG_OK || v.type != SEG_TYPE_STRING || !v.s)
        return SEG_OK;
    const seg__tz *cz;
    int why;
    rc = zone_get(db, ob, v.s, &cz, &why);
    seg__error_clear(db);
    if (rc != SEG_OK)
        return seg__error(db, rc, "out of memory");
    if (cz)
        *z = cz;
    return SEG_OK;
}

/* ------------------------------------------------------------------ emit */

static int check_text(seg_db *db, const char *what, const char *s, bool required, size_t max)
{
    if (!s) {
        if (required)
            return seg__error(db, SEG_EINVAL, "outbox: action %s: NULL", what);
        return SEG_OK;
    }
    /* the length, and whether every byte is ASCII (then valid UTF-8) */
    size_t n = 0;
    unsigned char bits = 0;
    for (; s[n]; n++)
        bits |= (unsigned char)s[n];
    if (required && n == 0)
        return seg__error(db, SEG_EINVAL, "outbox: action %s: empty", what);
    if (n > max)
        return seg__error(db, SEG_EINVAL, "outbox: action %s: longer than %zu bytes", what, max);
    if (bits >= 0x80 && !seg__utf8_valid(s, n))
        return seg__error(db, SEG_EINVAL, "outbox: action %s: not valid UTF-8", what);
    return SEG_OK;
}

static int check_action(seg_db *db, const seg__action *a)
{
    int rc = seg__check_id(db, "outbox: action customer_id", seg__cstr(a->customer_id));
    if (rc == SEG_OK)
        rc = seg__check_id(db, "outbox: action journey", seg__cstr(a->journey));
    if (rc == SEG_OK && a->channel)
        rc = seg__check_id(db, "outbox: action channel", seg__cstr(a->channel));
    if (rc == SEG_OK)
        rc = check_text(db, "step", a->step, true, OB_TEXT_MAX);
    if (rc == SEG_OK)
        rc = check_text(db, "state", a->state, false, OB_TEXT_MAX);
    if (rc == SEG_OK)
        rc = check_text(db, "action", a->action, true, OB_TEXT_MAX);
    if (rc == SEG_OK)
        rc = check_text(db, "params", a->params, false, OB_TEXT_MAX);
    if (rc == SEG_OK)
        rc = check_text(db, "variant", a->variant, false, OB_TEXT_MAX);
    if (rc == SEG_OK && a->run < 1)
        rc = seg__error(db, SEG_EINVAL, "outbox: action run: must be 1 or more");
    if (rc == SEG_OK && (a->time < SEG_TIME_MIN || a->time > SEG_TIME_MAX))
        rc = seg__error(db, SEG_ERANGE, "outbox: action time %" PRId64 " out of range",
                        a->time);
    return rc;
}

static const ob_window *window_of(const seg__outbox *ob, uint32_t chan)
{
    for (uint32_t k = 0; chan && k < ob->nwindows; k++)
        if (ob->windows[k].chan == chan)
            return &ob->windows[k];
    return NULL;
}

/* Is an action due at `due` over a cap of its channel? */
static bool over_cap(const seg__outbox *ob, uint32_t chan, const ob_ring *r, int64_t due)
{
    for (uint32_t k = 0; k < ob->ncaps; k++) {
        const ob_cap *c = &ob->caps[k];
        if (c->chan != chan)
            continue;
        uint32_t count = 0;
        for (uint32_t j = 0; r && j < r->n; j++) {
            int64_t d = r->t[j] > due ? r->t[j] - due : due - r->t[j];
            count += d < c->period;
        }
        if (count >= c->max)
            return true;
    }
    return false;
}

static int64_t max_period(const seg__outbox *ob, uint32_t chan, bool *any)
{
    int64_t p = 0;
    *any = false;
    for (uint32_t k = 0; k < ob->ncaps; k++)
        if (ob->caps[k].chan == chan) {
            *any = true;
            if (ob->caps[k].period > p)
                p = ob->caps[k].period;
        }
    return p;
}

static void entry_record(jbuf *b, const seg__outbox *ob, const ob_entry *x, const char *cust,
                         const char *step)
{
    char hex[17];
    put_hex64(hex, x->key);
    hex[16] = '\0';
    seg__text_put(b, "{", 1);
    jb_key(b, "seq"); jb_i64(b, (int64_t)x->seq);
    jb_key(b, "status"); jb_str(b, x->status == ST_PENDING ? "pending" : "suppressed");
    jb_key(b, "due"); jb_i64(b, x->due);
    jb_key(b, "time"); jb_i64(b, x->time);
    jb_key(b, "customer"); jb_str(b, cust);
    jb_key(b, "journey"); jb_str(b, tup_str(ob, x->tup, F_JOURNEY));
    jb_key(b, "run"); jb_i64(b, (int64_t)x->run);
    jb_key(b, "step"); jb_str(b, step);
    jb_key(b, "state"); jb_str(b, tup_str(ob, x->tup, F_STATE));
    jb_key(b, "action"); jb_str(b, tup_str(ob, x->tup, F_ACTION));
    jb_key(b, "channel"); jb_str(b, tup_str(ob, x->tup, F_CHANNEL));
    jb_key(b, "params"); jb_str(b, tup_str(ob, x->tup, F_PARAMS));
    jb_key(b, "variant"); jb_str(b, tup_str(ob, x->tup, F_VARIANT));
    jb_key(b, "key"); jb_str(b, hex);
    seg__text_put(b, "}", 1);
}

static void entry_key(char out[32], uint64_t seq)
{
    snprintf(out, 32, "e:%020" PRIu64, seq);
}

/* What check_action checks but the names (journey, state, action,
 * channel, params, variant), in its order; the customer id too unless it
 * is known to be the store's. */
static int check_rest(seg_db *db, const seg__action *a, bool cust_known)
{
    int rc = cust_known ? SEG_OK
                        : seg__check_id(db, "outbox: action customer_id",
                                        seg__cstr(a->customer_id));
    if (rc == SEG_OK)
        rc = check_text(db, "step", a->step, true, OB_TEXT_MAX);
    if (rc == SEG_OK && a->run < 1)
        rc = seg__error(db, SEG_EINVAL, "outbox: action run: must be 1 or more");
    if (rc == SEG_OK && (a->time < SEG_TIME_MIN || a->time > SEG_TIME_MAX))
        rc = seg__error(db, SEG_ERANGE, "outbox: action time %" PRId64 " out of range",
                        a->time);
    return rc;
}

static size_t set_home(const seg__outbox *ob, uint64_t key)
{
    return (size_t)(key ^ (key >> 29)) & (ob->setcap - 1);
}

static int emit_one(seg_db *db, const seg__action *a, int *outcome, uint64_t *seq_out,
                    uint64_t key);

int seg__outbox_emit(seg_db *db, const seg__action *a, int *outcome, uint64_t *seq_out)
{
    return emit_one(db, a, outcome, seq_out, 0);
}

#define OB_AHEAD 32 /* identities computed (their slots fetched) ahead */

int seg__outbox_emit_many(seg_db *db, const seg__action *a, size_t n, int *outcomes,
                          size_t *done)
{
    *done = 0;
    uint64_t keys[OB_AHEAD];
    for (size_t k0 = 0; k0 < n; k0 += OB_AHEAD) {
        size_t m = n - k0 < OB_AHEAD ? n - k0 : OB_AHEAD;
        const seg__outbox *ob = db ? ob_find(db) : NULL;
        for (size_t k = 0; k < m; k++) {
            const seg__action *x = &a[k0 + k];
            keys[k] = 0;
            if (ob && ob->setcap && x->customer_id && x->journey && x->step) {
                keys[k] = identity(x->customer_id, strlen(x->customer_id), x->journey, x->run,
                                   x->step, strlen(x->step));
                __builtin_prefetch(&ob->set[set_home(ob, keys[k])]);
            }
        }
        for (size_t k = 0; k < m; k++) {
            int rc = emit_one(db, &a[k0 + k], &outcomes[k0 + k], NULL, keys[k]);
            if (rc != SEG_OK)
                return rc;
            ++*done;
        }
    }
    return SEG_OK;
}

/* key: the action's identity when the caller computed it, else 0 */
static int emit_one(seg_db *db, const seg__action *a, int *outcome, uint64_t *seq_out,
                    uint64_t key)
{
    if (seq_out)
        *seq_out = 0;
    if (outcome)
        *outcome = SEG__EMIT_QUEUED;
    if (!db)
        return SEG_EINVAL;
    if (!a || !outcome)
        return seg__error(db, SEG_EINVAL, "outbox: emit: %s: NULL", !a ? "action" : "outcome");
    if (db->flags & SEG_DB_READONLY)
        return seg__error(db, SEG_EREADONLY, "the database was opened read-only");
    int rc;
    seg__outbox *ob = ob_find(db);
    /* the identity first, so that its slot of the key set (a cache miss in
     * a large outbox) is on its way while the action is checked */
    size_t ncust = a->customer_id ? strlen(a->customer_id) : 0;
    size_t nstep = a->step ? strlen(a->step) : 0;
    if (!key && ob && ob->setcap && a->customer_id && a->journey && a->step) {
        key = identity(a->customer_id, ncust, a->journey, a->run, a->step, nstep);
        __builtin_prefetch(&ob->set[set_home(ob, key)]);
    }
    /* the names: a tuple of the cache (checked when it was made), or
     * checked now; the customer: the store's when the caller's index is
     * right */
    const char *names[F_N] = { a->journey, a->state ? a->state : "", a->action, a->channel,
                               a->params ? a->params : "", a->variant };
    uint32_t tup = 0, ci = SEG__NONE;
    if (ob) {
        tup = tc_find(ob, names, a->stable_names);
        if (a->cust_index && a->customer_id &&
            store_has(ob, a->cust_index - 1, a->customer_id, ncust))
            ci = a->cust_index - 1;
    }
    rc = tup ? check_rest(db, a, ci != SEG__NONE) : check_action(db, a);
    if (rc != SEG_OK)
        return rc;
    if (!ob && (rc = ob_get(db, &ob)) != SEG_OK)
        return rc;
    if (!key)
        key = identity(a->customer_id, ncust, a->journey, a->run, a->step, nstep);
    size_t slot = ob->setcap ? set_slot(ob, key) : 0;
    if (ob->setcap && ob->set[slot] == key) {
        *outcome = SEG__EMIT_DUPLICATE; /* (*seq_out stays 0: no index by identity) */
        return SEG_OK;
    }
    const uint64_t *set_before = ob->set;
    if (ci == SEG__NONE)
        ci = store_find(ob, a->customer_id);
    if (!tup) {
        if (names_intern(ob, names, &tup) != SEG_OK)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        tc_put(ob, names, tup, a->stable_names);
    }
    ob_entry x;
    memset(&x, 0, sizeof x);
    x.seq = ob->next_seq;
    x.time = a->time;
    x.run = a->run;
    x.key = key;
    x.tup = tup;
    uint32_t chan = ob->tups[tup].f[F_CHANNEL];
    /* the due time: the channel's window in the customer's zone */
    x.due = a->time;
    const ob_window *w = window_of(ob, chan);
    if (w) {
        const seg__tz *z;
        if ((rc = customer_zone(db, ob, a->customer_id, &z)) != SEG_OK)
            return rc;
        x.due = seg__tz_window_due(z, a->time, w->start, w->end);
    }
    /* the caps */
    bool capped = false;
    int64_t maxp = chan && ob->ncaps ? max_period(ob, chan, &capped) : 0;
    uint32_t ri = UINT32_MAX;
    if (capped && (rc = ring_get(ob, a->customer_id, chan, &ri)) != SEG_OK)
        return seg__error(db, rc, "out of memory");
    x.status = capped && over_cap(ob, chan, &ob->rings[ri], x.due) ? ST_SUPPRESSED
                                                                   : ST_PENDING;
    bool count = capped && x.status == ST_PENDING;
    /* everything that can fail before anything changes */
    int64_t *nt = NULL;
    uint32_t nn = 0;
    int64_t *undo = NULL;
    jbuf b = { ob->a, NULL, 0, 0, false }, cb = { ob->a, NULL, 0, 0, false };
    rc = !grow_entries(ob) &&
                 !set_reserve(ob, 1)
             ? SEG_OK
             : SEG_ENOMEM;
    if (rc == SEG_OK && count) {
        ob_ring *r = &ob->rings[ri];
        nt = seg__calloc(ob->a, (size_t)r->n + 1, sizeof *nt);
        undo = r->n ? seg__calloc(ob->a, r->n, sizeof *undo) : NULL;
        if (!nt || (r->n && !undo) ||
            grow(ob->a, (void **)&ob->txundo, &ob->captxundo, ob->ntxundo + 1,
                 sizeof *ob->txundo)) {
            rc = SEG_ENOMEM;
        } else {
            /* the new times: this one merged into those still within the
             * longest period of the latest, ascending, at most OB_RING_MAX */
            int64_t latest = r->n && r->t[r->n - 1] > x.due ? r->t[r->n - 1] : x.due;
            uint32_t j = 0;
            bool placed = false;
            while (j < r->n || !placed) {
                int64_t v;
                if (!placed && (j == r->n || r->t[j] > x.due)) {
                    v = x.due;
                    placed = true;
                } else {
                    v = r->t[j++];
                }
                if (latest - v < maxp)
                    nt[nn++] = v;
            }
            if (nn > OB_RING_MAX) {
                memmove(nt, nt + (nn - OB_RING_MAX), OB_RING_MAX * sizeof *nt);
                nn = OB_RING_MAX;
            }
            if (r->n)
                memcpy(undo, r->t, r->n * sizeof *undo);
        }
    }
    size_t nxids = ob->nxids;
    if (rc == SEG_OK)
        rc = entry_set_cust(ob, &x, a->customer_id, ci); /* (last: undone below) */
    if (rc != SEG_OK) {
        seg__free(ob->a, nt);
        seg__free(ob->a, undo);
        return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    /* the records */
    if (seg__st_wants_records(db)) {
        char k[32];
        entry_key(k, x.seq);
        entry_record(&b, ob, &x, a->customer_id, a->step);
        char *ck = NULL;
        if (count) {
            seg__text_put(&cb, "{", 1);
            jb_key(&cb, "customer"); jb_str(&cb, a->customer_id);
            jb_key(&cb, "channel"); jb_str(&cb, a->channel);
            jb_key(&cb, "due");
            seg__text_put(&cb, "[", 1);
            for (uint32_t j = 0; j < nn; j++) {
                if (j)
                    seg__text_put(&cb, ",", 1);
                jb_i64(&cb, nt[j]);
            }
            seg__text_put(&cb, "]}", 2);
            size_t cl = strlen(a->customer_id) + strlen(a->channel) + 40;
            ck = seg__malloc(ob->a, cl);
            if (ck)
                snprintf(ck, cl, "c:%zu:%s:%s", strlen(a->customer_id), a->customer_id,
                         a->channel);
        }
        if (b.oom || cb.oom || (count && !ck))
            rc = seg__error(db, SEG_ENOMEM, "out of memory");
        if (rc == SEG_OK)
            rc = seg__st_put_record(db, OB_TABLE, k, b.p, b.n);
        if (rc == SEG_OK && count)
            rc = seg__st_put_record(db, OB_TABLE, ck, cb.p, cb.n);
        seg__free(ob->a, ck);
        seg__free(ob->a, b.p);
        seg__free(ob->a, cb.p);
        if (rc != SEG_OK) {
            if (ob->nxids > nxids)
                seg__free(ob->a, ob->xids[--ob->nxids]);
            seg__free(ob->a, nt);
            seg__free(ob->a, undo);
            return rc;
        }
    }
    /* publish into the transaction's staging (cannot fail from here) */
    if (count) {
        ob_ring *r = &ob->rings[ri];
        ob_undo u = { ri, r->n, undo };
        ob->txundo[ob->ntxundo++] = u;
        seg__free(ob->a, r->t);
        r->t = nt;
        r->n = nn;
        r->cap = r->n;
        if (r->cap < 1)
            r->cap = 1;
        /* (nt was allocated with old n + 1 >= nn slots) */
    }
    ob->e[ob->n++] = x;
    ob->next_seq++;
    if (ob->set != set_before) /* (set_reserve made a new table) */
        slot = set_slot(ob, key);
    ob->set[slot] = key;
    ob->setn++;
    *outcome = x.status == ST_SUPPRESSED ? SEG__EMIT_SUPPRESSED : SEG__EMIT_QUEUED;
    if (seq_out)
        *seq_out = x.seq;
    return SEG_OK;
}

/* --------------------------------------------------------------- reading */

/* buf: room for the customer id (SEG_ID_MAX + 1), as long as the item is
 * used */
static void fill_item(const seg__outbox *ob, const ob_entry *x, seg_outbox_item *it, char *buf)
{
    it->struct_size = sizeof *it;
    it->seq = x->seq;
    it->status = x->status == ST_PENDING ? SEG_OUTBOX_PENDING : SEG_OUTBOX_SUPPRESSED;
    it->due = x->due;
    it->time = x->time;
    it->customer_id = entry_cust(ob, x, buf);
    it->journey = tup_str(ob, x->tup, F_JOURNEY);
    it->run = x->run;
    it->state = tup_str(ob, x->tup, F_STATE);
    it->action = tup_str(ob, x->tup, F_ACTION);
    it->channel = tup_str(ob, x->tup, F_CHANNEL);
    it->params = tup_str(ob, x->tup, F_PARAMS);
    it->variant = tup_str(ob, x->tup, F_VARIANT);
}

static bool status_in(uint8_t status, uint32_t flags)
{
    return (status == ST_PENDING && (flags & SEG_OUTBOX_PENDING)) ||
           (status == ST_SUPPRESSED && (flags & SEG_OUTBOX_SUPPRESSED));
}

/* Stable merge sort of entry indices by due time (they come in seq order,
 * so ties stay in seq order).  tmp has n slots. */
static void sort_by_due(const ob_entry *e, size_t *ix, size_t *tmp, size_t n)
{
    size_t *src = ix, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                dst[o++] = e[src[j]].due < e[src[i]].due ? src[j++] : src[i++];
            while (i < mid)
                dst[o++] = src[i++];
            while (j < hi)
                dst[o++] = src[j++];
        }
        size_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != ix)
        memcpy(ix, src, n * sizeof *ix);
}

/* Indices of the published entries with a status in flags due at or before
 * now, by due time then seq.  *out is freed by the caller. */
static int collect(seg_db *db, seg__outbox *ob, int64_t now, uint32_t flags, size_t **out,
                   size_t *n_out)
{
    size_t n = 0;
    for (size_t k = 0; k < ob->ncommitted; k++)
        n += status_in(ob->e[k].status, flags) && ob->e[k].due <= now;
    *out = NULL;
    *n_out = 0;
    if (!n)
        return SEG_OK;
    size_t *ix = seg__calloc(ob->a, n, sizeof *ix);
    if (!ix)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    n = 0;
    for (size_t k = 0; k < ob->ncommitted; k++)
        if (status_in(ob->e[k].status, flags) && ob->e[k].due <= now)
            ix[n++] = k;
    bool sorted = true;
    for (size_t k = 1; k < n && sorted; k++)
        sorted = ob->e[ix[k - 1]].due <= ob->e[ix[k]].due;
    if (!sorted) {
        size_t *tmp = seg__calloc(ob->a, n, sizeof *tmp);
        if (!tmp) {
            seg__free(ob->a, ix);
            return seg__error(db, SEG_ENOMEM, "out of memory");
        }
        sort_by_due(ob->e, ix, tmp, n);
        seg__free(ob->a, tmp);
    }
    *out = ix;
    *n_out = n;
    return SEG_OK;
}

SEG_API int seg_outbox_fetch(size_t *count_out, seg_db *db, int64_t now, uint32_t flags,
                             size_t max, seg_outbox_cb cb, void *payload)
{
    if (count_out)
        *count_out = 0;
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    if (!cb)
        return seg__error(db, SEG_EINVAL, "outbox: fetch: callback: NULL");
    if (flags & ~(SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED))
        return seg__error(db, SEG_EINVAL, "outbox: fetch: unknown flags 0x%x", (unsigned)flags);
    if (!flags)
        flags = SEG_OUTBOX_PENDING;
    size_t *ix, n;
    if ((rc = collect(db, ob, now, flags, &ix, &n)) != SEG_OK)
        return rc;
    size_t done = 0;
    ob->walking++;
    for (size_t k = 0; k < n && (!max || done < max); k++) {
        const ob_entry *x = &ob->e[ix[k]];
        if (!status_in(x->status, flags) || x->ack_staged)
            continue; /* acknowledged by the callback meanwhile */
        seg_outbox_item it;
        char idbuf[SEG_ID_MAX + 1];
        fill_item(ob, x, &it, idbuf);
        done++;
        if (cb(&it, payload) != 0)
            break;
    }
    ob->walking--;
    seg__free(ob->a, ix);
    compact(ob);
    if (count_out)
        *count_out = done;
    seg__error_clear(db);
    return SEG_OK;
}

static size_t find_seq(const seg__outbox *ob, uint64_t seq)
{
    size_t lo = 0, hi = ob->ncommitted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ob->e[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ob->ncommitted && ob->e[lo].seq == seq ? lo : SIZE_MAX;
}

SEG_API int seg_outbox_get(seg_outbox_item *out, seg_db *db, uint64_t seq)
{
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (out->struct_size < sizeof(seg_outbox_item))
        return seg__error(db, SEG_EVERSION, "seg_outbox_item: unsupported struct_size %zu",
                          out->struct_size);
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    size_t k = find_seq(ob, seq);
    if (k == SIZE_MAX || ob->e[k].status == ST_GONE)
        return seg__error(db, SEG_ENOTFOUND, "outbox: no entry with seq %" PRIu64
                          " (acknowledged, or never issued)", seq);
    seg_outbox_item it;
    fill_item(ob, &ob->e[k], &it, ob->getbuf);
    return seg__struct_out(out, out->struct_size, &it, sizeof it, sizeof it);
}

SEG_API int seg_outbox_count(uint64_t *out, seg_db *db, uint32_t flags)
{
    if (out)
        *out = 0;
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (flags & ~(SEG_OUTBOX_PENDING | SEG_OUTBOX_SUPPRESSED))
        return seg__error(db, SEG_EINVAL, "outbox: count: unknown flags 0x%x", (unsigned)flags);
    if (!flags)
        flags = SEG_OUTBOX_PENDING;
    uint64_t n = 0;
    for (size_t k = 0; k < ob->ncommitted; k++)
        n += status_in(ob->e[k].status, flags);
    *out = n;
    return SEG_OK;
}

/* ------------------------------------------------------------------- ack */

static int write_chunk(seg_db *db, seg__outbox *ob)
{
    char key[32], *hex = seg__malloc(ob->a, (size_t)ob->stailn * 16 + 1);
    if (!hex)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    for (uint32_t k = 0; k < ob->stailn; k++)
        put_hex64(hex + 16 * k, ob->stail[k]);
    hex[16 * ob->stailn] = '\0';
    jbuf b = { ob->a, NULL, 0, 0, false };
    seg__text_put(&b, "{", 1);
    jb_key(&b, "n"); jb_i64(&b, ob->stailn);
    jb_key(&b, "keys"); jb_str(&b, hex);
    seg__text_put(&b, "}", 1);
    seg__free(ob->a, hex);
    snprintf(key, sizeof key, "d:%010" PRIu64, ob->stailidx);
    int rc = b.oom ? seg__error(db, SEG_ENOMEM, "out of memory")
                   : seg__st_put_record(db, OB_TABLE, key, b.p, b.n);
    seg__free(ob->a, b.p);
    return rc;
}

/* Stage the acknowledgement of seqs inside the open transaction. */
static int ack_stage(seg_db *db, seg__outbox *ob, const uint64_t *seqs, size_t n, size_t *acked)
{
    bool rec = seg__st_wants_records(db);
    int rc = SEG_OK;
    bool dirty = false;
    *acked = 0;
    if (grow(ob->a, (void **)&ob->txacks, &ob->captxacks, ob->ntxacks + n, sizeof *ob->txacks))
        return seg__error(db, SEG_ENOMEM, "out of memory");
    if (!ob->staged_chunks) {
        memcpy(ob->stail, ob->tail, ob->tailn * sizeof ob->tail[0]);
        ob->stailn = ob->tailn;
        ob->stailidx = ob->tailidx;
        ob->staged_chunks = true;
    }
    for (size_t k = 0; k < n && rc == SEG_OK; k++) {
        size_t i = find_seq(ob, seqs[k]);
        if (i == SIZE_MAX || ob->e[i].status == ST_GONE || ob->e[i].ack_staged)
            continue;
        if (rec) {
            char key[32];
            entry_key(key, seqs[k]);
            if ((rc = seg__st_put_record(db, OB_TABLE, key, NULL, 0)) != SEG_OK)
                break;
        }
        ob->e[i].ack_staged = 1;
        ob->txacks[ob->ntxacks++] = i;
        (*acked)++;
        ob->stail[ob->stailn++] = ob->e[i].key;
        dirty = true;
        if (ob->stailn == OB_CHUNK) {
            if (rec && (rc = write_chunk(db, ob)) != SEG_OK)
                break;
            ob->stailidx++;
            ob->stailn = 0;
            dirty = false;
        }
    }
    if (rc == SEG_OK && rec && dirty)
        rc = write_chunk(db, ob);
    if (rc == SEG_OK && rec && *acked) {
        jbuf b = { ob->a, NULL, 0, 0, false };
        seg__text_put(&b, "{", 1);
        jb_key(&b, "next_seq"); jb_i64(&b, (int64_t)ob->next_seq);
        seg__text_put(&b, "}", 1);
        rc = b.oom ? seg__error(db, SEG_ENOMEM, "out of memory")
                   : seg__st_put_record(db, OB_TABLE, "meta", b.p, b.n);
        seg__free(ob->a, b.p);
    }
    return rc;
}

/* One transaction acknowledging seqs (checked already). */
static int ack_txn(seg_db *db, seg__outbox *ob, const uint64_t *seqs, size_t n, size_t *acked)
{
    int rc = seg__st_begin(db);
    if (rc != SEG_OK)
        return rc;
    rc = ack_stage(db, ob, seqs, n, acked);
    if (rc == SEG_OK)
        rc = seg__st_commit(db);
    if (rc != SEG_OK) {
        seg__st_rollback(db);
        *acked = 0;
    }
    seg__modules_txn_end(db, rc == SEG_OK);
    return rc;
}

/* A customer erased or anonymized: their entries go as if acknowledged
 * (their identities stay known, so nothing is emitted twice), their cap
 * counters are emptied and the records of both deleted, all staged in the
 * caller's transaction. */
static int ob_customer_gone(seg_db *db, void *state, uint32_t ci, const char *customer_id)
{
    seg__outbox *ob = state;
    size_t n = 0;
    for (size_t k = 0; k < ob->n; k++)
        n += ob->e[k].status != ST_GONE && entry_is_cust(ob, &ob->e[k], ci, customer_id);
    if (n) {
        uint64_t *seqs = seg__malloc(ob->a, n * sizeof *seqs);
        if (!seqs)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        size_t m = 0;
        for (size_t k = 0; k < ob->n; k++)
            if (ob->e[k].status != ST_GONE && entry_is_cust(ob, &ob->e[k], ci, customer_id))
                seqs[m++] = ob->e[k].seq;
        size_t acked = 0;
        int rc = ack_stage(db, ob, seqs, m, &acked);
        seg__free(ob->a, seqs);
        if (rc != SEG_OK)
            return rc;
    }
    bool rec = seg__st_wants_records(db);
    for (uint32_t ri = 0; ri < ob->nrings; ri++) {
        ob_ring *r = &ob->rings[ri];
        if (!r->n || strcmp(r->cust, customer_id) != 0)
            continue;
        if (grow(ob->a, (void **)&ob->txundo, &ob->captxundo, ob->ntxundo + 1,
                 sizeof *ob->txundo))
            return seg__error(db, SEG_ENOMEM, "out of memory");
        if (rec) {
            const char *chan = str_of(ob, r->chan);
            size_t cl = strlen(customer_id) + strlen(chan) + 40;
            char *ck = seg__malloc(ob->a, cl);
            if (!ck)
                return seg__error(db, SEG_ENOMEM, "out of memory");
            snprintf(ck, cl, "c:%zu:%s:%s", strlen(customer_id), customer_id, chan);
            int rc = seg__st_put_record(db, OB_TABLE, ck, NULL, 0);
            seg__free(ob->a, ck);
            if (rc != SEG_OK)
                return rc;
        }
        /* the counter as it was goes to the undo list (back on rollback,
         * freed on commit) */
        ob_undo u = { ri, r->n, r->t };
        ob->txundo[ob->ntxundo++] = u;
        r->t = NULL;
        r->n = r->cap = 0;
    }
    return SEG_OK;
}

SEG_API int seg_outbox_ack(size_t *acked_out, seg_db *db, const uint64_t *seqs, size_t n)
{
    if (acked_out)
        *acked_out = 0;
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    if (!seqs && n)
        return seg__error(db, SEG_EINVAL, "outbox: ack: seqs: NULL");
    if ((rc = seg__db_writable(db)) != SEG_OK)
        return rc;
    for (size_t k = 0; k < n; k++)
        if (seqs[k] == 0 || seqs[k] >= ob->next_seq)
            return seg__error(db, SEG_EINVAL, "outbox: ack: seq %" PRIu64 " was never issued",
                              seqs[k]);
    size_t acked = 0;
    if (n)
        rc = ack_txn(db, ob, seqs, n, &acked);
    if (rc == SEG_OK && acked_out)
        *acked_out = acked;
    return rc;
}

/* --------------------------------------------------------------- deliver */

SEG_API int seg_outbox_set_callback(seg_db *db, seg_outbox_deliver_cb cb, void *payload)
{
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    ob->cb = cb;
    ob->cb_payload = cb ? payload : NULL;
    return SEG_OK;
}

SEG_API int seg_outbox_deliver(size_t *delivered_out, seg_db *db, int64_t now)
{
    if (delivered_out)
        *delivered_out = 0;
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    if (!ob->cb)
        return seg__error(db, SEG_EMISUSE, "outbox: deliver: no callback set "
                          "(seg_outbox_set_callback)");
    if ((rc = seg__db_writable(db)) != SEG_OK)
        return rc;
    size_t *ix, n;
    if ((rc = collect(db, ob, now, SEG_OUTBOX_PENDING, &ix, &n)) != SEG_OK)
        return rc;
    uint64_t group[OB_DELIVER_GROUP];
    size_t ng = 0, total = 0;
    ob->walking++;
    for (size_t k = 0; k <= n && rc == SEG_OK; k++) {
        bool stop = k == n;
        if (!stop) {
            const ob_entry *x = &ob->e[ix[k]];
            if (x->status != ST_PENDING)
                continue;
            seg_outbox_item it;
            char idbuf[SEG_ID_MAX + 1];
            fill_item(ob, x, &it, idbuf);
            ob->delivering = true;
            int r = ob->cb(&it, ob->cb_payload);
            ob->delivering = false;
            if (r == 0)
                group[ng++] = it.seq;
            stop = r < 0;
        }
        if (ng && (ng == OB_DELIVER_GROUP || stop)) {
            size_t acked;
            rc = ack_txn(db, ob, group, ng, &acked);
            if (rc == SEG_OK)
                total += acked;
            ng = 0;
        }
        if (stop)
            break;
    }
    ob->walking--;
    seg__free(ob->a, ix);
    compact(ob);
    if (delivered_out)
        *delivered_out = total;
    if (rc == SEG_OK)
        seg__error_clear(db);
    return rc;
}

/* --------------------------------------------------------- configuration */

SEG_API int seg_outbox_set_cap(seg_db *db, const char *channel, uint32_t max_actions,
                               int64_t period)
{
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    if ((rc = seg__check_id(db, "outbox: cap channel", seg__cstr(channel))) != SEG_OK)
        return rc;
    if (max_actions > OB_MAX_CAP)
        return seg__error(db, SEG_EINVAL, "outbox: cap of %u actions: at most %u", max_actions,
                          OB_MAX_CAP);
    if (period < 1 || period > OB_MAX_PERIOD)
        return seg__error(db, SEG_EINVAL, "outbox: cap period %" PRId64
                          " s: must be 1 s to 3660 days", period);
    uint32_t chan;
    if (str_intern(ob, channel, &chan))
        return seg__error(db, SEG_ENOMEM, "out of memory");
    uint32_t same = 0;
    for (uint32_t k = 0; k < ob->ncaps; k++)
        if (ob->caps[k].chan == chan) {
            if (ob->caps[k].period == period) {
                if (max_actions) {
                    ob->caps[k].max = max_actions;
                } else {
                    ob->caps[k] = ob->caps[--ob->ncaps];
                }
                return SEG_OK;
            }
            same++;
        }
    if (!max_actions)
        return SEG_OK;
    if (same >= OB_CAPS_PER_CHAN)
        return seg__error(db, SEG_ELIMIT, "outbox: channel '%s' has %d caps already", channel,
                          OB_CAPS_PER_CHAN);
    ob_cap *c = seg__realloc_array(ob->a, ob->caps, (size_t)ob->ncaps + 1, sizeof *c);
    if (!c)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    ob->caps = c;
    ob_cap nc = { chan, max_actions, period };
    ob->caps[ob->ncaps++] = nc;
    return SEG_OK;
}

SEG_API int seg_outbox_set_window(seg_db *db, const char *channel, int start_minute,
                                  int end_minute)
{
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    if ((rc = seg__check_id(db, "outbox: window channel", seg__cstr(channel))) != SEG_OK)
        return rc;
    bool remove = start_minute == -1 && end_minute == -1;
    if (!remove && (start_minute < 0 || start_minute > 1439 || end_minute < 0 ||
                    end_minute > 1440 || start_minute == end_minute ||
                    (end_minute == 1440 && start_minute == 0)))
        return seg__error(db, SEG_EINVAL,
                          "outbox: window %d..%d: start 0..1439 and end 0..1440 minutes of the "
                          "local day, different, not the whole day (-1, -1 removes it)",
                          start_minute, end_minute);
    uint32_t chan;
    if (str_intern(ob, channel, &chan))
        return seg__error(db, SEG_ENOMEM, "out of memory");
    for (uint32_t k = 0; k < ob->nwindows; k++)
        if (ob->windows[k].chan == chan) {
            if (remove) {
                ob->windows[k] = ob->windows[--ob->nwindows];
            } else {
                ob->windows[k].start = start_minute;
                ob->windows[k].end = end_minute % 1440;
            }
            return SEG_OK;
        }
    if (remove)
        return SEG_OK;
    ob_window *w = seg__realloc_array(ob->a, ob->windows, (size_t)ob->nwindows + 1, sizeof *w);
    if (!w)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    ob->windows = w;
    ob_window nw = { chan, start_minute, end_minute % 1440 };
    ob->windows[ob->nwindows++] = nw;
    return SEG_OK;
}

SEG_API int seg_outbox_set_zone_attr(seg_db *db, const char *name)
{
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    if ((rc = seg__check_id(db, "outbox: zone attribute name", seg__cstr(name))) != SEG_OK)
        return rc;
    char *c = dup_str(ob->a, name, strlen(name));
    if (!c)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    seg__free(ob->a, ob->zone_attr);
    ob->zone_attr = c;
    return SEG_OK;
}

/* A zone for the API: NULL for UTC, or an error naming the problem. */
static int api_zone(seg_db *db, seg__outbox *ob, const char *zone, const seg__tz **z)
{
    *z = NULL;
    if (!zone || strcmp(zone, "UTC") == 0)
        return SEG_OK;
    int why;
    int rc = zone_get(db, ob, zone, z, &why);
    if (rc != SEG_OK)
        return rc;
    if (!*z) {
        /* (cached as unknown: load again for the message) */
        seg__tz *tmp = NULL;
        rc = seg__tz_load(&tmp, db, zone);
        if (rc != SEG_OK)
            return rc;
        /* it is there now: cache it */
        for (uint32_t k = 0; k < ob->nzones; k++)
            if (!ob->zones[k].z && strcmp(ob->zones[k].name, zone) == 0) {
                ob->zones[k].z = tmp;
                *z = tmp;
                return SEG_OK;
            }
        seg__tz_free(ob->a, tmp);
        return seg__error(db, why, "time zone '%s': unknown", zone);
    }
    return SEG_OK;
}

SEG_API int seg_outbox_set_default_zone(seg_db *db, const char *zone)
{
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    const seg__tz *z;
    if ((rc = api_zone(db, ob, zone, &z)) != SEG_OK)
        return rc;
    ob->defzone = z;
    return SEG_OK;
}

SEG_API int seg_outbox_zone_offset(int32_t *out, seg_db *db, const char *zone, int64_t t)
{
    if (out)
        *out = 0;
    if (!db)
        return SEG_EINVAL;
    seg__outbox *ob;
    int rc = ob_enter(db, &ob);
    if (rc != SEG_OK)
        return rc;
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    const seg__tz *z;
    if ((rc = api_zone(db, ob, zone, &z)) != SEG_OK)
        return rc;
    *out = seg__tz_offset(z, t, NULL);
    return SEG_OK;
}
