/*
 * TEMPORARY: replaced by lib/outbox when merged.
 *
 * The internal interface between the journey engine and the outbox, exactly
 * as /work/notes/journey-outbox-contract.md declares it (the outbox owns this
 * file; lib/journey/outbox-shim.c implements it until the outbox lands).
 */
#ifndef SEGMENT_OUTBOX_PRIVATE_H
#define SEGMENT_OUTBOX_PRIVATE_H

#include "core/core-private.h"

/* One action a journey step emits. Strings are borrowed for the call. */
typedef struct seg__action {
    int64_t time;            /* when the step happened (event or timer time, UTC) */
    const char *customer_id;
    const char *journey;     /* journey name */
    uint64_t run;            /* the customer's run of this journey, from 1 */
    const char *step;        /* the step's identity within the run: stable text
                                chosen by the journey engine, e.g. "offer5>offer10"
                                or "offer5:enter"; unique within one run */
    const char *state;       /* the state the customer is in after the step */
    const char *action;      /* action name, e.g. "email:discount_5" */
    const char *channel;     /* channel for caps and windows, NULL = none */
    const char *params;      /* canonical "key=value;key=value" text ("" = none) */
    const char *variant;     /* A/B variant name, NULL = none */
} seg__action;

enum { SEG__EMIT_QUEUED = 0, SEG__EMIT_DUPLICATE = 1, SEG__EMIT_SUPPRESSED = 2 };

/* Must be called inside a storage transaction (see the rule above).
 * Deduplicates by (customer_id, journey, run, step) for the life of the
 * database (acknowledged actions included: the identity is remembered
 * compactly, e.g. a 64-bit hash set persisted with the outbox); applies the
 * frequency caps (a capped action is kept as suppressed, visible to the
 * host, never delivered); computes the due time from the send window of the
 * action's channel in the customer's time zone (an action at 03:00 local
 * waits for the window's opening); stages the entry with the next sequence
 * number. *outcome tells which; *seq_out (may be NULL) gets the sequence.
 * Returns SEG_OK or an error with the db's message set. */
int seg__outbox_emit(seg_db *db, const seg__action *a, int *outcome, uint64_t *seq_out);

#endif /* SEGMENT_OUTBOX_PRIVATE_H */
