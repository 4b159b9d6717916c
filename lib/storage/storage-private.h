/*
 * The core's calls into a storage backend.
 */
#ifndef SEGMENT_STORAGE_PRIVATE_H
#define SEGMENT_STORAGE_PRIVATE_H

#include "core/core-private.h"

/* Open db->backend on uri (allocating db->st).  Loads the stored state. */
int seg__storage_open(seg_db *db, const char *uri);
void seg__storage_close(seg_db *db);

/* Transactions and writes: each returns SEG_OK when the slot is NULL (the
 * backend does not persist that kind), or the backend's status with the
 * db's message set. */
int seg__st_begin(seg_db *db);
int seg__st_commit(seg_db *db);
void seg__st_rollback(seg_db *db);
int seg__st_put_meta(seg_db *db, const char *key, const char *value);
bool seg__st_wants_events(const seg_db *db);
int seg__st_put_events(seg_db *db, const seg_event_info *events, size_t n);
int seg__st_put_customer(seg_db *db, const char *customer_id);
int seg__st_put_attr(seg_db *db, const char *customer_id, const char *name, const seg_value *v);
int seg__st_put_consent(seg_db *db, const char *customer_id, const char *channel, int state);
int seg__st_erase_customer(seg_db *db, const char *customer_id);
/* Module records (a module's table, a key, data: data NULL deletes).  Write
 * them only inside a transaction; seg__st_wants_records is false when the
 * backend keeps no records (the memory backend: the module's own memory is
 * the only copy) or the db is read-only. */
bool seg__st_wants_records(const seg_db *db);
int seg__st_put_record(seg_db *db, const char *table, const char *key, const void *data,
                       size_t len);
/* Stream every stored record of `table` to cb (any order).  SEG_OK with no
 * call when the backend keeps no records. */
typedef int (*seg__record_cb)(void *ctx, const char *key, const void *data, size_t len);
int seg__st_load_records(seg_db *db, const char *table, seg__record_cb cb, void *ctx);

/* Fill a seg_event_info for stored event i (strings in buffers owned by
 * `bufs`, 6 x (SEG_ID_MAX+1) bytes + 34 for the id). */
typedef struct seg__info_bufs {
    char id[SEG_ID_MAX + 1], cust[SEG_ID_MAX + 1], order[SEG_ID_MAX + 1],
        chan[SEG_ID_MAX + 1], cat[SEG_ID_MAX + 1], sku[SEG_ID_MAX + 1],
        refund_of[SEG_ID_MAX + 1], name[SEG_ID_MAX + 1];
} seg__info_bufs;
void seg__event_info(const seg__store *s, uint32_t i, seg_event_info *out, seg__info_bufs *b);

/* Replaying a backend's load (ingest.c, customer.c). */
/* An event from the backend: checked, its derived id's occurrence found
 * (-1: not derived); strings point into *in. */
int seg__load_prepare(seg_db *db, const seg_event_info *in, seg__ev *out, int *occ_out);
/* Apply loaded events (in the load batch, opened on first use). */
int seg__load_events(seg_db *db, const seg__ev *evs, const int *occs, size_t n);
int seg__load_finish(seg_db *db, bool ok); /* ends the load batch */
void seg__loadq_free(seg_db *db);
int seg__load_declaration(seg_db *db, const char *name, const char *type);

#endif /* SEGMENT_STORAGE_PRIVATE_H */
