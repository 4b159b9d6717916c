/*
 * TEMPORARY: replaced by lib/outbox when merged.
 *
 * The recorder of lib/journey/outbox-shim.c, for tests/check_journey.c.
 */
#ifndef SEGMENT_OUTBOX_SHIM_H
#define SEGMENT_OUTBOX_SHIM_H

#include "outbox/outbox-private.h"

typedef struct seg__shim_entry {
    uint64_t seq;
    int64_t time;
    uint64_t run;
    char *customer_id, *journey, *step, *state, *action, *channel, *params, *variant;
} seg__shim_entry;

/* Entries of committed transactions, in emission order. */
size_t seg__outbox_shim_count(seg_db *db);
const seg__shim_entry *seg__outbox_shim_get(seg_db *db, size_t i);
/* Detach and free the recorder of db (before seg_db_close). */
void seg__outbox_shim_free(seg_db *db);

#endif /* SEGMENT_OUTBOX_SHIM_H */
