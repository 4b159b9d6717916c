/*
 * The journey engine's handle (engine.c), shared with persist.c.
 */
#ifndef SEGMENT_JOURNEY_ENGINE_H
#define SEGMENT_JOURNEY_ENGINE_H

#include "journey/journey-private.h"
#include "storage/storage-private.h"

#include <stdlib.h>

#define SEG__JR_CHUNK_BITS 16
#define SEG__JR_CHUNK (1u << SEG__JR_CHUNK_BITS)

struct seg_journey {
    seg_db *db;
    seg_segdef *cdef;            /* the definition with the conditions as hidden segments */
    seg__jrj *js;
    uint32_t nj;
    /* records: chunks of SEG__JR_CHUNK; head[ci] chains a customer's */
    seg__jrec **chunks;
    uint32_t nchunks, nrecs;
    uint32_t *head;
    uint32_t nhead;
    /* timers */
    seg__jtimer *heap;
    size_t nheap, capheap;
    /* the last advance */
    int64_t clock;
    bool has_clock;
    uint64_t attr_gen;           /* db->attr_gen at the last advance */
    /* single-customer evaluation */
    seg__run run;
    bool run_ok;
    int eval_err;
    int64_t bias;                /* 1 while an event is applied: conditions see it */
    /* the open transaction: undo log */
    bool in_txn;
    uint32_t nrecs0;
    int64_t clock0;
    bool has_clock0;
    struct { uint32_t rec; seg__jrec old; } *undo;
    size_t nundo, capundo;
    struct { uint32_t ci, old; } *hundo;
    size_t nhundo, caphundo;
    seg__jtimer *popped;
    size_t npopped, cappopped;
    uint32_t *touched;           /* records changed (to write) */
    size_t ntouched, captouched;
    uint64_t *stats0;            /* the counters at the start */
    /* actions */
    seg_journey_action_cb cb;
    void *cb_payload;
    char idbuf[SEG_ID_MAX + 1];
    char pbuf[4096];
};

/* persist.c: write the records changed in the open transaction (and the
 * counters); read them back at open. */
int seg__jr_persist(seg_journey *j);
int seg__jr_restore(seg_journey *j);
/* engine.c, for persist.c */
int seg__jr_rec_add(seg_journey *j, uint32_t ci, uint32_t jx, uint32_t *out);
int seg__jr_arm(seg_journey *j, uint32_t ri);
seg__jrec *seg__jr_rec(const seg_journey *j, uint32_t ri);
uint8_t seg__jr_pick_variant(const seg_journey *j, uint32_t jx, uint32_t ci);
void seg__jr_txn_end(seg_journey *j, bool committed);
int seg__jr_begin(seg_journey *j);
int seg__jr_touch(seg_journey *j, uint32_t ri);

#endif /* SEGMENT_JOURNEY_ENGINE_H */
