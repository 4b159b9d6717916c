/*
 * TEMPORARY: replaced by lib/outbox when merged.
 *
 * A stand-in for seg__outbox_emit (lib/outbox/outbox-private.h) so the
 * journey engine can be built and tested before the outbox lands: an
 * in-memory recorder per db that deduplicates on (customer, journey, run,
 * step), stages what a transaction emits and publishes it when the
 * transaction commits (a module of its own, like the real outbox).  No
 * caps, no send windows, no persistence.  The only functions besides
 * seg__outbox_emit are the recorder's, for tests/check_journey.c
 * (collect_actions).
 */
#include "journey/outbox-shim.h"

#include <stdio.h>

typedef struct shim {
    seg_db *db;
    seg__shim_entry *v;           /* published, then staged */
    size_t n, published, cap;
    uint64_t *ids;                /* identity hashes (open addressing, 0 empty) */
    size_t idcap, nids;
    uint64_t *staged_ids;         /* identities added in the open transaction */
    size_t nstaged, capstaged;
    uint64_t seq;
} shim;

static void shim_free(const seg__alloc *a, shim *s)
{
    for (size_t k = 0; k < s->n; k++) {
        seg__shim_entry *e = &s->v[k];
        seg__free(a, e->customer_id);
        seg__free(a, e->journey);
        seg__free(a, e->step);
        seg__free(a, e->state);
        seg__free(a, e->action);
        seg__free(a, e->channel);
        seg__free(a, e->params);
        seg__free(a, e->variant);
    }
    s->n = s->published = 0;
}

static bool id_has(const shim *s, uint64_t h)
{
    if (!s->idcap)
        return false;
    for (size_t i = h & (s->idcap - 1);; i = (i + 1) & (s->idcap - 1)) {
        if (s->ids[i] == h)
            return true;
        if (!s->ids[i])
            return false;
    }
}

static void id_del(shim *s, uint64_t h)
{
    /* rebuild without h (rare: rollbacks only) */
    size_t cap = s->idcap;
    uint64_t *old = s->ids;
    s->ids = seg__calloc(&s->db->alloc, cap, sizeof *s->ids);
    if (!s->ids) {
        s->ids = old;
        return;
    }
    s->nids = 0;
    for (size_t k = 0; k < cap; k++)
        if (old[k] && old[k] != h) {
            size_t i = old[k] & (cap - 1);
            while (s->ids[i])
                i = (i + 1) & (cap - 1);
            s->ids[i] = old[k];
            s->nids++;
        }
    seg__free(&s->db->alloc, old);
}

static int id_add(shim *s, uint64_t h)
{
    if ((s->nids + 1) * 2 > s->idcap) {
        size_t cap = s->idcap ? s->idcap * 2 : 64;
        uint64_t *t = seg__calloc(&s->db->alloc, cap, sizeof *t);
        if (!t)
            return SEG_ENOMEM;
        for (size_t k = 0; k < s->idcap; k++)
            if (s->ids[k]) {
                size_t i = s->ids[k] & (cap - 1);
                while (t[i])
                    i = (i + 1) & (cap - 1);
                t[i] = s->ids[k];
            }
        seg__free(&s->db->alloc, s->ids);
        s->ids = t;
        s->idcap = cap;
    }
    size_t i = h & (s->idcap - 1);
    while (s->ids[i])
        i = (i + 1) & (s->idcap - 1);
    s->ids[i] = h;
    s->nids++;
    return SEG_OK;
}

static void shim_txn_end(seg_db *db, void *state, bool committed)
{
    shim *s = state;
    if (committed) {
        s->published = s->n;
    } else {
        const seg__alloc *a = &db->alloc;
        for (size_t k = s->published; k < s->n; k++) {
            seg__shim_entry *e = &s->v[k];
            seg__free(a, e->customer_id);
            seg__free(a, e->journey);
            seg__free(a, e->step);
            seg__free(a, e->state);
            seg__free(a, e->action);
            seg__free(a, e->channel);
            seg__free(a, e->params);
            seg__free(a, e->variant);
        }
        s->n = s->published;
        for (size_t k = 0; k < s->nstaged; k++)
            id_del(s, s->staged_ids[k]);
    }
    s->nstaged = 0;
}

static const seg__module_ops shim_ops = { "outbox-shim", NULL, shim_txn_end };

static shim *shim_of(seg_db *db, bool create)
{
    for (unsigned i = 0; i < db->nmodules; i++)
        if (db->modules[i].ops == &shim_ops)
            return db->modules[i].state;
    if (!create)
        return NULL;
    shim *s = seg__calloc(&db->alloc, 1, sizeof *s);
    if (!s)
        return NULL;
    s->db = db;
    if (seg__module_attach(db, &shim_ops, s) != SEG_OK) {
        seg__free(&db->alloc, s);
        return NULL;
    }
    return s;
}

void seg__outbox_shim_free(seg_db *db)
{
    shim *s = shim_of(db, false);
    if (!s)
        return;
    seg__module_detach(db, s);
    shim_free(&db->alloc, s);
    seg__free(&db->alloc, s->v);
    seg__free(&db->alloc, s->ids);
    seg__free(&db->alloc, s->staged_ids);
    seg__free(&db->alloc, s);
}

static char *dup(const seg__alloc *a, const char *p, bool *oom)
{
    if (!p)
        return NULL;
    size_t n = strlen(p);
    char *d = seg__malloc(a, n + 1);
    if (!d) {
        *oom = true;
        return NULL;
    }
    memcpy(d, p, n + 1);
    return d;
}

int seg__outbox_emit(seg_db *db, const seg__action *a, int *outcome, uint64_t *seq_out)
{
    shim *s = shim_of(db, true);
    if (!s)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    char key[4 * SEG_ID_MAX + 64];
    int kn = snprintf(key, sizeof key, "%s%c%s%c%llu%c%s", a->customer_id, 0, a->journey, 0,
                      (unsigned long long)a->run, 0, a->step);
    uint64_t h = seg__hash(key, (size_t)kn, UINT64_C(0x5eed0b0c5eed0b0c)) | 1;
    if (id_has(s, h)) {
        *outcome = SEG__EMIT_DUPLICATE;
        if (seq_out)
            *seq_out = 0;
        return SEG_OK;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        seg__shim_entry *v = seg__realloc_array(&db->alloc, s->v, cap, sizeof *v);
        if (!v)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        s->v = v;
        s->cap = cap;
    }
    if (s->nstaged == s->capstaged) {
        size_t cap = s->capstaged ? s->capstaged * 2 : 64;
        uint64_t *v = seg__realloc_array(&db->alloc, s->staged_ids, cap, sizeof *v);
        if (!v)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        s->staged_ids = v;
        s->capstaged = cap;
    }
    bool oom = false;
    seg__shim_entry e;
    e.time = a->time;
    e.run = a->run;
    e.customer_id = dup(&db->alloc, a->customer_id, &oom);
    e.journey = dup(&db->alloc, a->journey, &oom);
    e.step = dup(&db->alloc, a->step, &oom);
    e.state = dup(&db->alloc, a->state, &oom);
    e.action = dup(&db->alloc, a->action, &oom);
    e.channel = dup(&db->alloc, a->channel, &oom);
    e.params = dup(&db->alloc, a->params, &oom);
    e.variant = dup(&db->alloc, a->variant, &oom);
    if (oom || id_add(s, h) != SEG_OK) {
        seg__free(&db->alloc, e.customer_id);
        seg__free(&db->alloc, e.journey);
        seg__free(&db->alloc, e.step);
        seg__free(&db->alloc, e.state);
        seg__free(&db->alloc, e.action);
        seg__free(&db->alloc, e.channel);
        seg__free(&db->alloc, e.params);
        seg__free(&db->alloc, e.variant);
        return seg__error(db, SEG_ENOMEM, "out of memory");
    }
    e.seq = ++s->seq;
    s->staged_ids[s->nstaged++] = h;
    s->v[s->n++] = e;
    *outcome = SEG__EMIT_QUEUED;
    if (seq_out)
        *seq_out = e.seq;
    return SEG_OK;
}

size_t seg__outbox_shim_count(seg_db *db)
{
    shim *s = shim_of(db, false);
    return s ? s->published : 0;
}

const seg__shim_entry *seg__outbox_shim_get(seg_db *db, size_t i)
{
    shim *s = shim_of(db, false);
    return s && i < s->published ? &s->v[i] : NULL;
}
