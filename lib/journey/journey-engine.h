/*
 * The journey engine's handle (engine.c), shared with persist.c.
 */
#ifndef SEGMENT_JOURNEY_ENGINE_H
#define SEGMENT_JOURNEY_ENGINE_H

#include "journey/journey-private.h"
#include "storage/storage-private.h"
#include "outbox/outbox-private.h"

#include <stdlib.h>

#define SEG__JR_CHUNK_BITS 16
#define SEG__JR_CHUNK (1u << SEG__JR_CHUNK_BITS)
#define SEG__JR_QUEUE 64        /* actions queued for the outbox */
#define SEG__JR_QTEXT 16384     /* their customer ids and steps */
#define SEG__JR_STEP_MAX (2 * SEG_ID_MAX + 48) /* a step's text, NUL included */
#define SEG__JW_BITS 16          /* a timer bucket: 65536 s (about 18 h) */

/* The timers due in one bucket of time (unsorted until loaded). */
typedef struct seg__jbucket {
    uint64_t b;                  /* (due - SEG_TIME_MIN) >> SEG__JW_BITS */
    seg__jtimer *v;
    uint32_t n, cap;
} seg__jbucket;

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
    /* timers: buckets of 2^SEG__JW_BITS seconds, in order; the first
     * bdone are loaded (sorted, consumed up to bpos in the last of them, the
     * others kept until the transaction ends); timers due in a loaded bucket
     * or earlier go to a small heap beside them */
    seg__jbucket *bk;
    uint32_t nbk, capbk, bdone, bpos;
    uint32_t bhint;              /* the bucket pushed to last */
    seg__jtimer *side;           /* 4-ary heap ordered by (due, record) */
    size_t nside, capside;
    void *scratch;               /* the sort's, until the transaction ends */
    size_t capscratch;           /* bytes */
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
    uint32_t bdone0, bpos0;      /* the buckets' cursor at the start */
    uint8_t epoch;               /* this transaction's mark: a record whose 'txn' is
                                    this is saved in the undo log (or new) */
    seg__jrec *undo;             /* old copies of the records changed, 'next'
                                    holding the record's index; the records
                                    added are [nrecs0, nrecs) */
    size_t nundo, capundo;
    seg__jtimer *popped;         /* timers taken from the side heap */
    size_t npopped, cappopped;
    uint32_t *gone;              /* customers unlinked (erased): ci, old head pairs */
    size_t ngone, capgone;
    uint64_t *stats0;            /* the counters at the start */
    size_t mem_peak;             /* the most memory the engine held, at a transaction's end */
    /* the last due time computed (timer_due), valid while tgen is */
    struct {
        uint64_t gen;
        int64_t asof, due;
        uint32_t ri, which;
    } tcache;
    uint64_t tgen;               /* changes with every step and every batch */
    /* actions */
    seg_journey_action_cb cb;
    void *cb_payload;
    /* seg__outbox_emit_many; bench_journey swaps in a counter to time the
     * engine alone */
    int (*outbox_emit)(seg_db *db, const seg__action *a, size_t n, int *outcomes,
                       size_t *done);
    char idbuf[SEG_ID_MAX + 1];
    /* the actions made and not yet given to the outbox (and to the callback):
     * given, in order, when the queue is full and before the records are
     * written at the end of a batch or advance (the callback may not call
     * into the database, so it sees no difference); their customer ids
     * and steps in qtext */
    seg__action q[SEG__JR_QUEUE];
    int qout[SEG__JR_QUEUE];     /* outcomes */
    bool qheld[SEG__JR_QUEUE];   /* held out: not for the outbox */
    uint32_t nq;
    size_t nqtext;
    char qtext[SEG__JR_QTEXT];
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
/* the records changed in the open transaction, for persist.c */
size_t seg__jr_changed_count(const seg_journey *j);
uint32_t seg__jr_changed(const seg_journey *j, size_t k);
/* bytes the engine holds for its records, timers and logs (bench) */
size_t seg__jr_memory(const seg_journey *j);

#endif /* SEGMENT_JOURNEY_ENGINE_H */
