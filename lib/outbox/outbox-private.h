/*
 * The outbox (lib/outbox/): durable actions for the host to deliver, with
 * deduplication, frequency caps and send windows in the customer's own time
 * zone.  This header is the interface other modules (the journey engine)
 * emit through; see doc/outbox.md and /work/notes/journey-outbox-contract.md.
 */
#ifndef SEGMENT_OUTBOX_PRIVATE_H
#define SEGMENT_OUTBOX_PRIVATE_H

#include "core/core-private.h"

/* One action a journey step emits.  Strings are borrowed for the call. */
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
    uint32_t cust_index;     /* the store's index of customer_id + 1 when the caller
                                knows it (checked, a wrong one is ignored: it only
                                saves a lookup), 0 = unknown */
    bool stable_names;       /* journey, state, action, channel, params and variant
                                point to text that stays unchanged until
                                seg__outbox_forget_names(): the outbox may then
                                know them by address, without comparing text */
} seg__action;

enum { SEG__EMIT_QUEUED = 0, SEG__EMIT_DUPLICATE = 1, SEG__EMIT_SUPPRESSED = 2 };

/* Must be called inside a storage transaction: seg__st_begin, emits,
 * seg__st_commit (or seg__st_rollback), then seg__modules_txn_end(db, ok),
 * which publishes (or discards) what the emits staged.  The ingest batch's
 * events_added hooks are inside such a transaction already.
 *
 * Deduplicates by (customer_id, journey, run, step) for the life of the
 * database (acknowledged actions included: a 64-bit hash of the identity is
 * remembered, persisted with the outbox); computes the due time from the
 * send window of the action's channel in the customer's time zone; applies
 * the frequency caps (a capped action is kept as suppressed, visible to the
 * host, never delivered); stages the entry with the next sequence number.
 * *outcome (required) tells which (SEG__EMIT_*); *seq_out (may be NULL) gets
 * the new entry's sequence number (queued or suppressed; 0 for a duplicate:
 * identities are kept as hashes, not indexed to entries, so that a
 * duplicate costs one hash lookup).  Returns SEG_OK, or SEG_EINVAL /
 * SEG_EREADONLY / SEG_ENOMEM / SEG_ESTORAGE with the db's message set, and
 * then nothing was staged. */
int seg__outbox_emit(seg_db *db, const seg__action *a, int *outcome, uint64_t *seq_out);

/* a[0..n) as n calls of seg__outbox_emit in order (outcomes[k] each), but
 * faster: the identities are hashed ahead and their slots of the key set
 * fetched while the earlier ones are staged.  Stops at the first error
 * (returned, with the db's message); *done (required) tells how many were
 * emitted, all of them on SEG_OK. */
int seg__outbox_emit_many(seg_db *db, const seg__action *a, size_t n, int *outcomes,
                          size_t *done);

/* The text that emits with stable_names pointed to may change from now on
 * (its owner frees it): the outbox forgets those addresses. */
void seg__outbox_forget_names(seg_db *db);

/* Free the outbox's state of db (seg_db_close). */
void seg__outbox_free(seg_db *db);
/* Make sure the outbox of db is loaded (and so attached: it then follows
 * seg_customer_erase() and seg_customer_anonymize(), which call this
 * first).  SEG_OK or an error with the db's message. */
int seg__outbox_load(seg_db *db);

/* ---- time zones (lib/outbox/tz.c) ---- */

typedef struct seg__tz seg__tz;

/* Parse a TZif file (RFC 8536, versions 1 to 4) held in data[0..len).
 * SEG_OK, SEG_EPARSE (err names the problem) or SEG_ENOMEM. */
int seg__tz_parse(seg__tz **out, const seg__alloc *a, const void *data, size_t len, char *err,
                  size_t errsize);
void seg__tz_free(const seg__alloc *a, seg__tz *z);
/* The zone's UTC offset (seconds east) at instant t, and in *next_out (may
 * be NULL) an instant > t before which the offset does not change
 * (INT64_MAX: never changes again). */
int32_t seg__tz_offset(const seg__tz *z, int64_t t, int64_t *next_out);
/* Load zone `name` from $TZDIR or /usr/share/zoneinfo.  SEG_OK,
 * SEG_EINVAL (not a zone name), SEG_ENOTFOUND (no such file), SEG_EIO,
 * SEG_EPARSE (not a valid TZif file) or SEG_ENOMEM, with db's message set. */
int seg__tz_load(seg__tz **out, seg_db *db, const char *name);
/* The directory zones are read from. */
const char *seg__tz_dir(void);

/* The first instant u >= t whose local time (zone z, NULL = UTC) lies in
 * the daily window [start_min, end_min) (minutes of the local day;
 * start_min > end_min: the window crosses midnight). */
int64_t seg__tz_window_due(const seg__tz *z, int64_t t, int start_min, int end_min);

#endif /* SEGMENT_OUTBOX_PRIVATE_H */
