/*
 * Customer journeys: per-customer state machines, written as `journey`
 * blocks in the definition language (doc/journey.md), that turn segments
 * and events into actions.
 *
 * seg_journey_open() starts the journeys of a compiled definition on its
 * database: from then on every ingested batch moves customers as its
 * events happen (inside the batch's transaction), and
 * seg_journey_advance() moves them on time: timers ('after 14d') and
 * conditions that change with time alone.  Every action a step emits goes
 * to the database's outbox (doc/journey.md), once per step whatever is
 * re-ingested, re-advanced or replayed.  With the SQLite backend the
 * customers' states are stored with the batch or advance that changed
 * them, and restored by the next seg_journey_open() on the file.
 */
#ifndef SEGMENT_JOURNEY_H
#define SEGMENT_JOURNEY_H

#include "segment/core.h"
#include "segment/segdef.h"

SEG_BEGIN_DECLS

/** The journeys of a definition, running on its database.  @since 1.0 */
typedef struct seg_journey seg_journey;

/** Why a customer is no longer in a journey (seg_journey_status.exit_reason).
 *  @since 1.0 */
#define SEG_JOURNEY_IN 0          /**< still in the journey (or never entered) */
#define SEG_JOURNEY_EXIT_DONE 1   /**< a transition to 'exit' */
#define SEG_JOURNEY_EXIT_RULE 2   /**< an 'exit when' or 'exit on' rule */
#define SEG_JOURNEY_EXIT_REMOVED 3 /**< the state was removed from the definition */

/** What became of an action (seg_journey_action.outcome).  @since 1.0 */
#define SEG_JOURNEY_QUEUED 0      /**< in the outbox */
#define SEG_JOURNEY_DUPLICATE 1   /**< the outbox had this step's action already */
#define SEG_JOURNEY_SUPPRESSED 2  /**< kept by the outbox as suppressed (a frequency cap) */
#define SEG_JOURNEY_HELD_OUT 3    /**< the customer is in the holdout group: not sent */

/**
 * Start the journeys of @p def (compiled with seg_segdef_compile(); at
 * least one `journey` block) on def's database.  The journeys keep their
 * own copy of the definition: @p def may be freed afterwards.  With a
 * backend that keeps module records (SQLite) the customers' states stored
 * earlier are restored; a customer whose state no longer exists in the
 * definition leaves the journey (SEG_JOURNEY_EXIT_REMOVED), one whose
 * journey no longer exists keeps its stored record untouched.
 * @return SEG_OK; SEG_EINVAL (no journey in @p def); SEG_EBUSY (journeys
 *         are open on this database already); SEG_ESTORAGE; SEG_ENOMEM.
 * @since 1.0
 */
SEG_API int seg_journey_open(seg_journey **out, seg_segdef *def);

/** Stop the journeys (no more steps); NULL is a no-op.  @since 1.0 */
SEG_API void seg_journey_close(seg_journey *j);

/**
 * Move every customer to time @p now: every timer due at or before @p now
 * fires at its own time, in time order (a customer whose timers are far
 * apart takes each in turn); conditions that depend on time alone fire at
 * the time they became true; customers enter journeys whose entry rule
 * now holds.  One transaction: on failure nothing changed.  Advancing
 * again with the same @p now changes nothing.
 * @return SEG_OK; SEG_ERANGE (@p now before the last advance, or out of
 *         range); SEG_EBUSY (a batch or a foreach is open); SEG_ESTORAGE.
 * @since 1.0
 */
SEG_API int seg_journey_advance(seg_journey *j, int64_t now);

/** Number of journeys.  @since 1.0 */
SEG_API size_t seg_journey_count(const seg_journey *j);
/** Name of journey @p i (NULL when out of range); lives as long as @p j.
 *  @since 1.0 */
SEG_API const char *seg_journey_name(const seg_journey *j, size_t i);

/** A customer's place in a journey (seg_journey_status_get).  @since 1.0 */
typedef struct seg_journey_status {
    size_t struct_size;   /**< sizeof(seg_journey_status) */
    const char *state;    /**< the current state, NULL when not in the journey */
    uint64_t run;         /**< the customer's run of the journey (from 1), 0: never entered */
    int64_t since;        /**< when the state was entered, or when the customer left */
    const char *variant;  /**< A/B variant ("holdout" for the holdout group), NULL: no split */
    int converted;        /**< 1 when this run reached the journey's goal */
    int exit_reason;      /**< SEG_JOURNEY_IN or SEG_JOURNEY_EXIT_* */
} seg_journey_status;

/** Defaults for seg_journey_status.  @since 1.0 */
#define SEG_JOURNEY_STATUS_INIT { sizeof(seg_journey_status), NULL, 0, 0, NULL, 0, 0 }

/**
 * Where customer @p customer_id is in journey @p journey.  The strings
 * live as long as @p j.  A customer who never entered gets run 0.
 * @return SEG_OK; SEG_ENOTFOUND (no such journey or customer); SEG_EINVAL.
 * @since 1.0
 */
SEG_API int seg_journey_status_get(seg_journey_status *out, seg_journey *j,
                                   const char *journey, const char *customer_id);

/** One action of a step, as the journey emitted it.  @since 1.0 */
typedef struct seg_journey_action {
    size_t struct_size;      /**< sizeof(seg_journey_action) */
    int64_t time;            /**< when the step happened */
    const char *customer_id;
    const char *journey;
    uint64_t run;            /**< the customer's run of the journey */
    const char *step;        /**< the step's identity within the run */
    const char *state;       /**< the state after the step ("" when the step left the journey) */
    const char *action;      /**< e.g. "email:discount_5" */
    const char *channel;     /**< the part of the action before ':', NULL without one */
    const char *params;      /**< "key=value;key=value" sorted by key, "" without */
    const char *variant;     /**< NULL without a split */
    int outcome;             /**< SEG_JOURNEY_QUEUED ... SEG_JOURNEY_HELD_OUT */
} seg_journey_action;

/** Called for every action a step emits; the strings live for the call.
 *  It must not call into the database.  @since 1.0 */
typedef void (*seg_journey_action_cb)(const seg_journey_action *action, void *payload);

/** Watch the actions as they are emitted (NULL stops).  Actions of a
 *  transaction that rolls back were reported too.  @since 1.0 */
SEG_API int seg_journey_set_action_cb(seg_journey *j, seg_journey_action_cb cb, void *payload);

/** Row kinds of seg_journey_report.  @since 1.0 */
#define SEG_JOURNEY_ROW_VARIANT 1
#define SEG_JOURNEY_ROW_STATE 2

/** One row of the conversion report.  @since 1.0 */
typedef struct seg_journey_row {
    size_t struct_size;      /**< sizeof(seg_journey_row) */
    const char *journey;
    int kind;                /**< SEG_JOURNEY_ROW_VARIANT or SEG_JOURNEY_ROW_STATE */
    const char *name;        /**< the variant ("" without a split, "holdout") or the state */
    uint64_t entered;        /**< runs started in the variant / entries into the state */
    uint64_t converted;      /**< runs that reached the goal: in the variant / while in the state */
    uint64_t active;         /**< customers in the journey now: in the variant / in the state */
} seg_journey_row;

/** Receives the report's rows; non-zero stops.  @since 1.0 */
typedef int (*seg_journey_report_cb)(const seg_journey_row *row, void *payload);

/**
 * Conversions of every journey: one row per variant (the holdout group
 * last), then one row per state, journey after journey.
 * @return SEG_OK; SEG_EINVAL.
 * @since 1.0
 */
SEG_API int seg_journey_report(seg_journey *j, seg_journey_report_cb cb, void *payload);

SEG_END_DECLS

#endif /* SEGMENT_JOURNEY_H */
