/*
 * The database handle.
 */
#ifndef SEGMENT_CORE_PRIVATE_H
#define SEGMENT_CORE_PRIVATE_H

#include "segment-private.h"
#include "event/event-private.h"

/* The core's side of a storage (seg_storage.core). */
struct seg__storage_core {
    seg_db *db;
    const seg_storage_backend *backend;
};

/* A module with state of its own (loyalty ledgers, journey states, the
 * outbox) that follows ingestion: attached to a db with
 * seg__module_attach (lib/storage/storage.c), detached before it is freed.
 * Not called while the backend loads (the state it keeps was stored). */
typedef struct seg__module_ops {
    const char *name;
    /* Inside the batch's storage transaction, after the batch's new events
     * (store indexes first .. first+n-1) were applied in memory.  May write
     * records (seg__st_put_record) and stage in-memory changes; a failure
     * (status with the db's message set) rolls the whole batch back. */
    int (*events_added)(seg_db *db, void *state, uint32_t first, uint32_t n);
    /* After that transaction ended: publish the staged changes when it
     * committed, discard them when it rolled back.  Never fails. */
    void (*txn_end)(seg_db *db, void *state, bool committed);
    /* Inside the transaction of seg_customer_erase() or
     * seg_customer_anonymize(), before the customer (index ci, id
     * customer_id) leaves the store: forget everything kept about them
     * (delete their records, stage the change in memory; txn_end publishes
     * or discards it).  May be NULL. */
    int (*customer_gone)(seg_db *db, void *state, uint32_t ci, const char *customer_id);
} seg__module_ops;

#define SEG__MODULES_MAX 16

int seg__module_attach(seg_db *db, const seg__module_ops *ops, void *state);
void seg__module_detach(seg_db *db, void *state);
int seg__modules_events(seg_db *db, uint32_t first, uint32_t n);
void seg__modules_txn_end(seg_db *db, bool committed);
int seg__modules_customer_gone(seg_db *db, uint32_t ci, const char *customer_id);

struct seg_db {
    seg__alloc alloc;
    int exponent;
    uint32_t flags;          /* SEG_DB_* */
    int errcode;
    char *errmsg;            /* heap, errcap bytes */
    size_t errcap;
    /* storage */
    const seg_storage_backend *backend;
    seg_storage *st;
    struct seg__storage_core stcore;
    bool loading;            /* replaying the backend's load: no writes back */
    bool in_batch;
    bool iterating;          /* inside a foreach callback: no changes allowed */
    struct seg__batch *load_batch; /* open while the backend loads */
    struct seg__loadq *loadq;      /* loaded items not applied yet (storage.c) */
    /* store */
    seg__store store;
    char idbuf[SEG_ID_MAX + 1];
    /* children (seg_segdef ...) holding a reference: the memory is freed
     * when the caller has closed the db and the last child is freed */
    uint32_t children;
    bool closed;
    /* bumped by every change of attributes or consent (lib/customer/), so
     * cached evaluations know when they are stale */
    uint64_t attr_gen;
    /* modules attached (seg__module_attach) */
    struct {
        const seg__module_ops *ops;
        void *state;
    } modules[SEG__MODULES_MAX];
    unsigned nmodules;
};


#endif /* SEGMENT_CORE_PRIVATE_H */
