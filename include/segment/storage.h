/*
 * libsegment: storage backends.
 *
 * The engine keeps its working state (events, customers, aggregates) in
 * memory and writes every change through a storage backend, a versioned
 * table of functions in the manner of SQLite's VFS.  On open the backend
 * streams back what it holds (load), so a durable backend restores the
 * database.  A host can write its own backend: fill a seg_storage_methods
 * table, wrap it in a seg_storage_backend and pass it in
 * seg_db_options.storage.  There is no global registry.
 *
 * Versioning: `version` comes first; slots are only ever appended, each
 * group with a new version number.  The core reads a slot only when the
 * backend's version includes it.  Any write slot may be NULL, meaning that
 * this backend does not persist that kind of data (the in-memory backend
 * keeps events and customers only in the engine's own memory).
 *
 * Order of calls: open, then load (once, outside any transaction: the
 * backend streams what it holds), then transactions of writes, then close.
 * Opened with SEG_DB_READONLY, a backend gets no write calls and no
 * transactions.  The core stores these meta entries: "currency_exponent"
 * (0..6) and "attr:NAME" (the type of attribute NAME: string, int, number,
 * bool, time); a backend stores meta entries as opaque text.
 *
 * Calls: the core never calls one seg_storage from two threads at once.
 * Every change happens between begin and commit (or rollback); load and the
 * put_* calls of one batch form one transaction.  A backend reports a
 * failure by returning a negative status (normally SEG_ESTORAGE) after
 * seg_storage_set_error(); the core then rolls the transaction back, undoes
 * the change in memory and returns the status to its caller.
 */
#ifndef SEGMENT_STORAGE_H
#define SEGMENT_STORAGE_H

#include "segment/core.h"
#include "segment/event.h"
#include "segment/customer.h"

SEG_BEGIN_DECLS

/** @defgroup storage Storage backends
 *  @{ */

typedef struct seg_storage seg_storage;
typedef struct seg_storage_methods seg_storage_methods;

/** Opaque to backends: the core's side of a storage. */
struct seg__storage_core;

/**
 * The base of every backend's storage struct: a backend's own struct starts
 * with a seg_storage, and the core allocates storage_size bytes for it,
 * zeroed, before calling open.
 * @since 1.0
 */
struct seg_storage {
    const seg_storage_methods *methods; /**< set by open, even when it fails */
    struct seg__storage_core *core;     /**< set by the core; backends leave it alone */
};

/**
 * Receives the stored state during load.  Each callback returns SEG_OK or a
 * negative status (the backend then stops and returns it).  Pointers are
 * valid during the call only.  Order: meta, customers, events (in the order
 * they were stored), attributes, consent, records.
 * @since 1.0
 */
typedef struct seg_storage_sink {
    size_t struct_size;  /**< sizeof(seg_storage_sink) as known to the core */
    int (*meta)(void *ctx, const char *key, const char *value);            /**< a meta entry */
    int (*customer)(void *ctx, const char *customer_id);                   /**< a customer */
    /** An event.  event_id NULL stands for the derived id of the first
     *  event with this content (occurrence 0), which the core computes;
     *  a repeat of identical content carries its derived id. */
    int (*event)(void *ctx, const seg_event_info *event);
    int (*attr)(void *ctx, const char *customer_id, const char *name,
                const seg_value *value);                                    /**< an attribute */
    int (*consent)(void *ctx, const char *customer_id, const char *channel,
                   int state);                                              /**< a consent flag */
    int (*record)(void *ctx, const char *table, const char *key,
                  const void *data, size_t len);                            /**< a module record */
} seg_storage_sink;

/** Version 1 of seg_storage_methods. @since 1.0 */
#define SEG_STORAGE_METHODS_V1 1
/** Version 2 of seg_storage_methods: adds load_records. @since 1.0 */
#define SEG_STORAGE_METHODS_V2 2

/**
 * The backend's functions.  All return SEG_OK or a negative status.
 * @since 1.0
 */
struct seg_storage_methods {
    int version; /**< SEG_STORAGE_METHODS_V1 */
    /** Open the store named by uri; flags are SEG_DB_CREATE | SEG_DB_READONLY.
     *  SEG_EBUSY when another writer has it. */
    int (*open)(seg_storage *st, const char *uri, uint32_t flags, void *app_data);
    /** Release everything; never fails.  Called also after a failed open. */
    void (*close)(seg_storage *st);
    /** Stream everything stored to the sink (may be NULL: nothing stored). */
    int (*load)(seg_storage *st, const seg_storage_sink *sink, void *ctx);
    /** Start a transaction. */
    int (*begin)(seg_storage *st);
    /** Make the transaction durable; when it returns SEG_OK the data survives a crash. */
    int (*commit)(seg_storage *st);
    /** Discard the transaction. */
    int (*rollback)(seg_storage *st);
    /** Store a meta entry (the core stores "currency_exponent"). */
    int (*put_meta)(seg_storage *st, const char *key, const char *value);
    /** Store new events (event_id always set; never one already stored). */
    int (*put_events)(seg_storage *st, const seg_event_info *events, size_t n);
    /** Store a customer that has no events yet (a prospect). */
    int (*put_customer)(seg_storage *st, const char *customer_id);
    /** Store an attribute; value->type SEG_TYPE_NULL deletes it.  The customer
     *  may be new to the backend (put_attr and put_consent create it). */
    int (*put_attr)(seg_storage *st, const char *customer_id, const char *name,
                    const seg_value *value);
    /** Store a consent state; SEG_CONSENT_UNKNOWN deletes it. */
    int (*put_consent)(seg_storage *st, const char *customer_id, const char *channel,
                       int state);
    /** Delete a customer with every event, attribute and consent of theirs.
     *  (Anonymization is an erase followed by put_customer and put_events
     *  under the new id.) */
    int (*erase_customer)(seg_storage *st, const char *customer_id);
    /** Store (data non-NULL) or delete (data NULL) a keyed record of a module's
     *  table ("journey_state", "ledger", "outbox", ...). */
    int (*put_record)(seg_storage *st, const char *table, const char *key,
                      const void *data, size_t len);
    /* ---- end of version 1 ---- */
    /** Stream the records of one module table to sink->record (in any
     *  order; only that member of the sink is called).  A module that is
     *  set up after the database was opened reads its state this way.  May
     *  be NULL (or the backend version 1): the core then runs load() again
     *  and keeps only that table's records. */
    int (*load_records)(seg_storage *st, const char *table, const seg_storage_sink *sink,
                        void *ctx);
    /* ---- end of version 2; append new slots below, never reorder ---- */
};

/** Version 1 of seg_storage_backend. @since 1.0 */
#define SEG_STORAGE_BACKEND_V1 1

/**
 * A backend as a host hands it to seg_db_open() through
 * seg_db_options.storage.  Must stay unchanged while a db uses it.
 * @since 1.0
 */
struct seg_storage_backend {
    int version;                         /**< SEG_STORAGE_BACKEND_V1 */
    size_t storage_size;                 /**< size of the backend's struct (>= sizeof(seg_storage)) */
    const char *name;                    /**< short name for messages ("memory", "sqlite") */
    const seg_storage_methods *methods;  /**< the functions */
    void *app_data;                      /**< passed to open */
};

/**
 * The in-memory backend, the default: the engine's memory is the only copy
 * of events, customers and the modules' state (gone at close); its
 * put_record slot is NULL.  It keeps meta entries, with transactions.
 * @since 1.0
 */
SEG_API const seg_storage_backend *seg_storage_memory(void);

/** @name The SQLite backend
 * One SQLite file holds everything the engine stores (events, customers,
 * attributes, consent, module records) in plain tables that the sqlite3
 * shell can read; doc/storage.md documents them.  The uri given to
 * seg_db_open() is the file's path (or an SQLite "file:" URI).
 *
 * - Durability: WAL mode and one SQLite transaction per batch.  By default
 *   (synchronous=FULL) a batch is on disk when the call that wrote it
 *   returns SEG_OK: it survives a crash of the process and a power loss.
 *   With SEG_STORAGE_SQLITE_SYNC_NORMAL it survives a crash of the process
 *   (SIGKILL, abort) but the last batches may be lost on a power loss or an
 *   OS crash; writes are faster.
 * - One writer: a second open for writing of the same file, from any
 *   process or from this one, fails with SEG_EBUSY while the first is open
 *   (an advisory lock on the file FILE-seglock, created next to it and left
 *   there).  Any number of SEG_DB_READONLY opens may read it meanwhile; each
 *   sees the state as of its open.
 * - A file that does not exist is created only with SEG_DB_CREATE
 *   (otherwise SEG_ENOTFOUND).  A file of a newer libsegment is refused
 *   with SEG_EVERSION; an older one is upgraded when opened for writing.
 *   A file that is not a libsegment database, or is damaged, is refused
 *   with SEG_ESTORAGE and a message naming the problem.
 * - Built with -Dsqlite=disabled, these functions still exist: the backend's
 *   open fails with SEG_ENOTSUP, and seg_storage_sqlite_new() returns it.
 * @{ */

/** seg_storage_sqlite_options.flags: synchronous=NORMAL (see above). @since 1.0 */
#define SEG_STORAGE_SQLITE_SYNC_NORMAL 0x1u

/**
 * Options of an SQLite backend made by seg_storage_sqlite_new().
 * Initialize with SEG_STORAGE_SQLITE_OPTIONS_INIT or
 * seg_storage_sqlite_options_init().
 * @since 1.0
 */
typedef struct seg_storage_sqlite_options {
    size_t struct_size;  /**< sizeof(seg_storage_sqlite_options) as compiled by the caller */
    uint32_t flags;      /**< SEG_STORAGE_SQLITE_SYNC_NORMAL */
    /** NULL, or a `sqlite3 *` the host has open: the backend uses it and
     *  never closes it, and the uri given to seg_db_open() is ignored.  The
     *  backend adds its tables (all named seg_*) to that database and changes
     *  no setting of the connection, so durability follows the host's
     *  journal_mode and synchronous (WAL and FULL are recommended).  The
     *  connection must stay open until seg_db_close(), and the host uses it
     *  only between calls on the db (one thread at a time).  Inside a
     *  transaction of the host's, the backend's writes are savepoints: they
     *  become durable when the host commits. */
    void *connection;
} seg_storage_sqlite_options;

/** Default options. @since 1.0 */
#define SEG_STORAGE_SQLITE_OPTIONS_INIT { sizeof(seg_storage_sqlite_options), 0, NULL }

/**
 * Write the default options into @p opts (for bindings).
 * @return SEG_OK, SEG_EINVAL (NULL) or SEG_EVERSION (size smaller than 1.0's).
 * @since 1.0
 */
SEG_API int seg_storage_sqlite_options_init(seg_storage_sqlite_options *opts,
                                            size_t struct_size);

/**
 * The SQLite backend with default options: pass it in
 * seg_db_options.storage and the file's path as the uri.  Static: never
 * freed.  Never NULL, also when built without SQLite.
 * @since 1.0
 */
SEG_API const seg_storage_backend *seg_storage_sqlite(void);

/**
 * An SQLite backend with options (for instance a host's own connection).
 * @param out  receives the backend, or NULL on failure; free it with
 *             seg_storage_sqlite_free() after the last seg_db_close() of a
 *             database that uses it.
 * @param opts options, or NULL for defaults
 * @return SEG_OK, SEG_EINVAL (out NULL, unknown flags), SEG_EVERSION
 *         (struct_size), SEG_ENOMEM, SEG_ENOTSUP (built without SQLite).
 * @since 1.0
 */
SEG_API int seg_storage_sqlite_new(seg_storage_backend **out,
                                   const seg_storage_sqlite_options *opts);

/**
 * Free a backend made by seg_storage_sqlite_new().  NULL, and the static
 * backend of seg_storage_sqlite(), are ignored.
 * @since 1.0
 */
SEG_API void seg_storage_sqlite_free(seg_storage_backend *backend);

/** @} */

/**
 * Report a failure from inside a backend call: formats a message that
 * becomes the db's seg_errmsg() (prefixed with the backend's name).
 * @return @p code, so a backend can write `return seg_storage_set_error(...)`.
 * @since 1.0
 */
SEG_API int seg_storage_set_error(seg_storage *st, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** @} */

SEG_END_DECLS

#endif /* SEGMENT_STORAGE_H */
