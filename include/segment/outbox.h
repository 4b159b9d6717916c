/*
 * libsegment: the outbox: actions (emitted by journeys) waiting for the host
 * to deliver them.
 *
 * Every action is stored durably (through the storage backend, so the
 * SQLite backend persists it) with a sequence number and stays until the
 * host acknowledges it (at-least-once delivery).  The same step of the same
 * journey run for the same customer is queued once for the life of the
 * database.  Frequency caps suppress actions beyond N per customer per
 * channel per period (kept as suppressed, never silently lost), and send
 * windows delay an action until its channel's window opens in the
 * customer's own time zone (an IANA name in a customer attribute, read from
 * the system's zoneinfo).  See doc/outbox.md.
 *
 * Configuration (caps, windows, the zone attribute, the default zone)
 * belongs to the open handle: set it after every seg_db_open(), before the
 * journeys run.  The queue, the deduplication memory and the cap counters
 * are stored with the database.
 */
#ifndef SEGMENT_OUTBOX_H
#define SEGMENT_OUTBOX_H

#include "core.h"

SEG_BEGIN_DECLS

/** @defgroup outbox Outbox
 *  @{ */

/** @name Entry status (seg_outbox_item.status; also fetch flags)
 * @{ */
#define SEG_OUTBOX_PENDING    0x1u /**< waiting for delivery and acknowledgement */
#define SEG_OUTBOX_SUPPRESSED 0x2u /**< over a frequency cap: never delivered */
/** @} */

/**
 * One entry of the outbox, filled by the library.  Strings are owned by the
 * db and valid during the callback (or, from seg_outbox_get(), until the
 * next call on the db).
 * @since 1.0
 */
typedef struct seg_outbox_item {
    size_t struct_size;      /**< sizeof(seg_outbox_item) as compiled by the caller */
    uint64_t seq;            /**< sequence number, from 1, never reused */
    uint32_t status;         /**< SEG_OUTBOX_PENDING or SEG_OUTBOX_SUPPRESSED */
    int64_t due;             /**< when to deliver (UTC): the action's time moved into its send window */
    int64_t time;            /**< when the journey step happened (UTC) */
    const char *customer_id; /**< the customer */
    const char *journey;     /**< the journey's name */
    uint64_t run;            /**< the customer's run of the journey, from 1 */
    const char *state;       /**< the customer's state after the step */
    const char *action;      /**< the action's name ("email:discount_5") */
    const char *channel;     /**< the channel, NULL for none */
    const char *params;      /**< "key=value;key=value" ("" for none) */
    const char *variant;     /**< the A/B variant, NULL for none */
} seg_outbox_item;

/** An empty item for seg_outbox_get(). @since 1.0 */
#define SEG_OUTBOX_ITEM_INIT { sizeof(seg_outbox_item), 0, 0, 0, 0, NULL, NULL, 0, NULL, \
                               NULL, NULL, NULL, NULL }

/**
 * Called for each entry by seg_outbox_fetch().  Reads fields only within
 * item->struct_size.  Return 0 to go on, non-zero to stop.  The callback may
 * acknowledge the item (seg_outbox_ack()) and make other calls on the db;
 * entries acknowledged meanwhile are not visited.
 * @since 1.0
 */
typedef int (*seg_outbox_cb)(const seg_outbox_item *item, void *payload);

/**
 * Visit the entries due at or before @p now, in order of due time, then of
 * sequence number.
 * @param count_out  NULL, or receives how many entries were visited.
 * @param flags      SEG_OUTBOX_PENDING and/or SEG_OUTBOX_SUPPRESSED: which
 *                   entries (0 means SEG_OUTBOX_PENDING).
 * @param max        visit at most this many (0: no limit).
 * @return SEG_OK (also when @p cb stopped the walk), SEG_EINVAL, SEG_EMISUSE,
 *         SEG_ENOMEM, SEG_ESTORAGE (the outbox could not be loaded).
 * @since 1.0
 */
SEG_API int seg_outbox_fetch(size_t *count_out, seg_db *db, int64_t now, uint32_t flags,
                             size_t max, seg_outbox_cb cb, void *payload);

/**
 * Read one entry by sequence number (pending or suppressed).
 * @param out  an item initialized with SEG_OUTBOX_ITEM_INIT.
 * @return SEG_OK, SEG_ENOTFOUND (acknowledged, or never issued), SEG_EINVAL,
 *         SEG_EVERSION (struct_size too small), SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_outbox_get(seg_outbox_item *out, seg_db *db, uint64_t seq);

/**
 * Acknowledge entries: they are removed, durably, in one transaction (all
 * or none).  Suppressed entries are removed the same way.  A sequence
 * number already acknowledged is skipped (so a retried acknowledgement
 * succeeds); one never issued is SEG_EINVAL and nothing changes.  The
 * identities of acknowledged actions stay remembered: they are never queued
 * again.
 * @param acked_out  NULL, or receives how many entries were removed.
 * @return SEG_OK, SEG_EINVAL, SEG_EREADONLY, SEG_EMISUSE, SEG_ENOMEM,
 *         SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_outbox_ack(size_t *acked_out, seg_db *db, const uint64_t *seqs, size_t n);

/**
 * How many entries have the status(es) in @p flags (as seg_outbox_fetch(),
 * whatever their due time).
 * @return SEG_OK, SEG_EINVAL, SEG_ENOMEM, SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_outbox_count(uint64_t *out, seg_db *db, uint32_t flags);

/** @name Push delivery
 * @{ */

/**
 * Delivers one action for seg_outbox_deliver().  Return 0 when the action
 * was delivered: it is then acknowledged.  Return a positive value when it
 * could not be delivered: it stays pending (offered again by the next
 * seg_outbox_deliver()) and delivery goes on with the next action.  Return
 * a negative value to stop: this action stays pending and no other is
 * offered in this call.
 * @since 1.0
 */
typedef int (*seg_outbox_deliver_cb)(const seg_outbox_item *item, void *payload);

/**
 * Set (or, with a NULL @p cb, remove) the db's delivery callback.  Only
 * seg_outbox_deliver() calls it.
 * @return SEG_OK, SEG_EINVAL, SEG_EMISUSE, SEG_ENOMEM, SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_outbox_set_callback(seg_db *db, seg_outbox_deliver_cb cb, void *payload);

/**
 * Offer every pending action due at or before @p now to the delivery
 * callback, in order of due time then sequence number, and acknowledge
 * those it delivered (in one transaction per 256 actions, so a crash
 * repeats at most those: at-least-once).  Inside the callback, outbox calls
 * on this db return SEG_EMISUSE.
 * @param delivered_out  NULL, or receives how many were delivered and
 *                       acknowledged.
 * @return SEG_OK, SEG_EMISUSE (no callback set, or called from a callback),
 *         SEG_EREADONLY, SEG_ENOMEM, SEG_ESTORAGE (the acknowledgement
 *         failed: those actions stay pending).
 * @since 1.0
 */
SEG_API int seg_outbox_deliver(size_t *delivered_out, seg_db *db, int64_t now);

/** @} */

/** @name Frequency caps and send windows
 * @{ */

/**
 * Allow at most @p max_actions actions per customer on @p channel within
 * any @p period seconds, across all journeys.  An action over the cap is
 * kept as SEG_OUTBOX_SUPPRESSED.  A channel may have several caps (one per
 * period: setting the same period again replaces it); @p max_actions 0
 * removes the cap of that period.  Counted are the non-suppressed actions
 * emitted while a cap on the channel is set, at their due times.
 * @param max_actions 0..10000
 * @param period      1 second .. 3660 days
 * @return SEG_OK, SEG_EINVAL, SEG_ELIMIT (more than 8 caps on a channel),
 *         SEG_EMISUSE, SEG_ENOMEM, SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_outbox_set_cap(seg_db *db, const char *channel, uint32_t max_actions,
                               int64_t period);

/**
 * Deliver actions of @p channel only between @p start_minute and
 * @p end_minute of the customer's local day (0..1439 and 0..1440): an
 * action outside it is due at the window's next opening.  When start is
 * after end the window crosses midnight (1320, 480: 22:00 to 08:00).  Both
 * -1 remove the channel's window.  Quiet hours are the complement of the
 * window.
 * @return SEG_OK, SEG_EINVAL (also for start == end), SEG_EMISUSE,
 *         SEG_ENOMEM, SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_outbox_set_window(seg_db *db, const char *channel, int start_minute,
                                  int end_minute);

/**
 * Name the customer attribute holding the customer's IANA time zone
 * ("Europe/Paris"); default "timezone".  A customer without it, or with a
 * zone the system does not have, gets the db's default zone.
 * @return SEG_OK, SEG_EINVAL, SEG_EMISUSE, SEG_ENOMEM, SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_outbox_set_zone_attr(seg_db *db, const char *name);

/**
 * Set the db's default time zone (an IANA name; NULL or "UTC" for UTC, the
 * default).  Zones are read from $TZDIR, or /usr/share/zoneinfo.
 * @return SEG_OK, SEG_EINVAL (not a zone name), SEG_ENOTFOUND (no such
 *         zone), SEG_EPARSE (not a valid TZif file), SEG_EIO, SEG_EMISUSE,
 *         SEG_ENOMEM, SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_outbox_set_default_zone(seg_db *db, const char *zone);

/**
 * The UTC offset (seconds east, daylight saving included) of @p zone at
 * instant @p t, as the outbox computes it (through the db's zone cache).
 * @return SEG_OK, or as seg_outbox_set_default_zone(); *out is 0 on failure.
 * @since 1.0
 */
SEG_API int seg_outbox_zone_offset(int32_t *out, seg_db *db, const char *zone, int64_t t);

/** @} */

/** @} */

SEG_END_DECLS

#endif /* SEGMENT_OUTBOX_H */
