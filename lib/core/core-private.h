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
};


#endif /* SEGMENT_CORE_PRIVATE_H */
