/* store.h - the ticket database: SQLite in WAL mode, prepared statements only.
 *
 * A TmStore is one SQLite connection with its prepared statements. The schema
 * is versioned with PRAGMA user_version and migrated forward at open; a
 * database newer than this program is refused. All SQL binds its values as
 * parameters; no statement is built from input.
 *
 * A transaction is also the store's critical section: tm_store_begin() takes
 * the store's mutex and opens the mail's transaction (a savepoint inside a
 * BEGIN IMMEDIATE batch, so two writers never deadlock on a lock upgrade);
 * tm_store_commit() or tm_store_rollback() ends both. Several threads' mails
 * may share one SQLite COMMIT (group commit, up to group_commit_max): commit
 * returns TRUE only once that COMMIT has succeeded, and a rollback undoes
 * only the caller's own work.
 * Every other call must be made between them, from the thread that began;
 * only a single-threaded program (ticketctl) may also call the reading
 * functions (get_ticket, list_tickets, ticket_messages) outside one.
 *
 *   if (!tm_store_begin (store, &error)) -> tempfail
 *   ... lookups, inserts ...
 *   ok ? tm_store_commit (store, &error) : tm_store_rollback (store);
 *
 * Tables: tickets, ticket_tags, messages (UNIQUE (queue, message_key): the
 * idempotency key, the Message-ID or else the content hash), attachments,
 * message_ids (every Message-ID that threads into a ticket: inbound mail and
 * mail the desk generated), events (timestamped facts for response times),
 * outbox (mail the desk sends: written with the ticket, delivered later by
 * the outbox worker; its rows are never deleted, so they are also the record
 * behind the per-sender acknowledgement limit).
 * Times are Unix seconds (UTC).
 *
 * Errors: every function that can fail returns FALSE (or 0/NULL) and sets
 * *error in TM_STORE_ERROR; TM_STORE_ERROR_BUSY means the database stayed
 * locked past busy_timeout, which the milter answers with tempfail.
 */
#ifndef TM_STORE_H
#define TM_STORE_H

#include <glib.h>

#define TM_STORE_ERROR (tm_store_error_quark ())
GQuark tm_store_error_quark (void);
typedef enum {
  TM_STORE_ERROR_OPEN,       /* cannot open or create the file */
  TM_STORE_ERROR_SCHEMA,     /* migration failed, or the schema is too new */
  TM_STORE_ERROR_BUSY,       /* locked past the busy timeout */
  TM_STORE_ERROR_FAILED,     /* any other SQLite error (disk full, read-only...) */
} TmStoreError;

typedef struct TmStore TmStore;     /* opaque */

typedef struct {
  guint busy_timeout_ms;     /* 0: SQLite's default of failing at once */
  gboolean synchronous_full; /* every commit on disk when it returns (the WAL is
                              * fdatasync'd after COMMIT, outside the lock), else
                              * SQLite's NORMAL: safe from a crash of the daemon,
                              * not from one of the machine */
  gboolean create;           /* create the file (and its schema) when missing */
  guint group_commit_max;    /* mails that may share one COMMIT; 0 or 1: one each */
} TmStoreOptions;

typedef struct {
  gint64 id;
  char *queue;
  char *customer_address;
  char *customer_name;       /* may be NULL */
  char *subject;
  char *status;              /* new open pending resolved closed */
  char *priority;            /* low normal high urgent */
  char *team;                /* may be NULL */
  char *assignee;            /* may be NULL */
  char *language;            /* may be NULL */
  char **tags;               /* NULL-terminated, never NULL */
  gint64 created_at;
  gint64 updated_at;
} TmTicket;

typedef struct {
  gint64 id;                 /* row id; set by tm_store_add_message */
  gint64 ticket_id;
  char *queue;
  char *message_key;         /* idempotency key: Message-ID or "sha256:HEX" */
  char *message_id;          /* may be NULL */
  char *direction;           /* customer agent note autoreply automated */
  char *sender;              /* envelope sender, "" for <> */
  char *from_address;        /* may be NULL */
  char *from_name;           /* may be NULL */
  char *subject;
  char *mta_queue_id;        /* may be NULL */
  gint64 received_at;
  char *body_text;
  gsize size;
  gboolean truncated;
  char *warnings;            /* '\n'-separated parse problems, or NULL */
  GPtrArray *attachments;    /* of TmAttachment* (message.h); may be NULL */
} TmStoredMessage;

/* path ":memory:" gives a private in-memory database (ticketctl simulate on a
 * store that does not exist yet). Returns NULL with *error set. */
TmStore *tm_store_open (const char *path, const TmStoreOptions *options,
                        GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Closes the store and clears the caller's pointer; NULL is fine. */
void tm_store_close (TmStore **store);
/* The schema version this program writes. */
int tm_store_schema_version (void);

gboolean tm_store_begin (TmStore *store, GError **error);
gboolean tm_store_commit (TmStore *store, GError **error);
void tm_store_rollback (TmStore *store);

/* How group commit went so far; callable from any thread, inside a
 * transaction or not. */
typedef struct {
  gint64 commits;            /* SQLite COMMITs that succeeded */
  gint64 mails;              /* mails committed by them */
  gint64 wal_syncs;          /* fdatasyncs of the WAL after a COMMIT (synchronous_full) */
  guint writers_waiting;     /* threads queued in tm_store_begin right now */
} TmStoreGroupStats;
void tm_store_group_stats (TmStore *store, TmStoreGroupStats *stats);

/* Idempotency: the ticket that already holds (queue, message_key), or 0. */
gboolean tm_store_find_message (TmStore *store, const char *queue,
                                const char *message_key, gint64 *ticket_id,
                                GError **error);

/* Threading: the ticket a Message-ID (without <>) belongs to within QUEUE,
 * or 0 when it is unknown or belongs to another queue. */
gboolean tm_store_find_ticket_by_message_id (TmStore *store, const char *queue,
                                             const char *message_id,
                                             gint64 *ticket_id, GError **error);

/* *ticket is NULL when the id does not exist (that is not an error). */
gboolean tm_store_get_ticket (TmStore *store, gint64 id, TmTicket **ticket,
                              GError **error);

/* Inserts ticket (its id, created_at and updated_at are read from the struct
 * except id); sets ticket->id. Tags are inserted too. */
gboolean tm_store_create_ticket (TmStore *store, TmTicket *ticket, GError **error);

/* A customer or agent mail on an existing ticket: sets updated_at, and the
 * status when new_status is not NULL. */
gboolean tm_store_touch_ticket (TmStore *store, gint64 ticket_id, gint64 now,
                                const char *new_status, GError **error);

/* Inserts the message, its attachments and its Message-ID; sets message->id. */
gboolean tm_store_add_message (TmStore *store, TmStoredMessage *message,
                               GError **error);

/* Records that a Message-ID belongs to a ticket (mail the desk generated). */
gboolean tm_store_remember_message_id (TmStore *store, gint64 ticket_id,
                                       const char *message_id, const char *origin,
                                       GError **error);

/* kind: created customer-message agent-reply ack-sent status-change ...;
 * message_row may be 0, detail may be NULL. */
gboolean tm_store_add_event (TmStore *store, gint64 ticket_id, gint64 message_row,
                             const char *kind, gint64 at, const char *detail,
                             GError **error);

/* Reading for ticketctl. Filters may be NULL. limit 0: no limit. Newest first.
 * Returns a GPtrArray of TmTicket* that frees them, or NULL with *error. */
GPtrArray *tm_store_list_tickets (TmStore *store, const char *status,
                                  const char *queue, guint limit, GError **error);
/* The messages of a ticket, oldest first, with attachments: GPtrArray of
 * TmStoredMessage* that frees them, or NULL with *error. */
GPtrArray *tm_store_ticket_messages (TmStore *store, gint64 ticket_id,
                                     GError **error);

typedef struct {
  char *kind;                /* created customer-message ack-queued ack-sent ... */
  gint64 at;
  char *detail;              /* may be NULL */
} TmEvent;

/* The events of a ticket, oldest first: GPtrArray of TmEvent* that frees
 * them, or NULL with *error. */
GPtrArray *tm_store_ticket_events (TmStore *store, gint64 ticket_id, GError **error);

/* History counts stop here: "at least 100" is all an agent needs to know. */
#define TM_CUSTOMER_HISTORY_LIMIT 100

typedef struct {
  gint64 total;              /* other tickets of the customer, at most the limit */
  gint64 open;               /* those new, open or pending, at most the limit */
  gint64 last_ticket;        /* the latest of them, 0 when none */
  gboolean capped;           /* there are more than TM_CUSTOMER_HISTORY_LIMIT */
} TmCustomerHistory;

/* Inside a transaction: the customer's tickets other than EXCEPT_TICKET. */
gboolean tm_store_customer_history (TmStore *store, const char *customer_address,
                                    gint64 except_ticket, TmCustomerHistory *history,
                                    GError **error);

/* ---- outbox ---- */

typedef struct {
  gint64 id;                 /* set by tm_store_outbox_add */
  gint64 ticket_id;
  char *queue;
  char *kind;                /* the template: "ack", "after-hours" */
  char *sender;              /* envelope sender; "" is the null sender */
  char *recipient;           /* envelope recipient, lower-cased */
  char *message_id;          /* of the mail, without <> */
  char *data;                /* the whole mail, CRLF; NUL-terminated when read */
  gsize length;
  char *status;              /* pending sent failed (read only) */
  int attempts;              /* (read only) */
  gint64 created_at;         /* the pipeline's clock: what the rate limit counts */
  gint64 queued_us;          /* wall clock when queued, microseconds */
  gint64 next_attempt_at;    /* wall clock, seconds; 0: at once */
  gint64 done_at;            /* sent or failed at (read only), 0 while pending */
  char *origin_queue_id;     /* MTA queue id of the mail that caused it, or NULL */
  char *last_result;         /* the server's last reply or the failure (read only) */
} TmOutboxMail;

/* Inside a transaction: queues MAIL (status pending); sets mail->id. */
gboolean tm_store_outbox_add (TmStore *store, TmOutboxMail *mail, GError **error);
/* The created_at of the latest mail QUEUE sent or queued to RECIPIENT (any
 * status, any ticket), or 0. */
gboolean tm_store_outbox_last_to (TmStore *store, const char *queue, const char *recipient,
                                  gint64 *created_at, GError **error);
/* Up to LIMIT pending mails with next_attempt_at <= NOW, the most overdue
 * first (GPtrArray of TmOutboxMail* that frees them); when there are none,
 * *earliest is the next_attempt_at of the earliest pending mail (0: none).
 * NULL with *error on failure. */
GPtrArray *tm_store_outbox_due (TmStore *store, gint64 now, guint limit, gint64 *earliest,
                                GError **error);
/* Inside a transaction: the outcome of one delivery attempt (attempts + 1).
 * Each fails when the mail is no longer pending. */
gboolean tm_store_outbox_mark_sent (TmStore *store, gint64 mail_id, gint64 at,
                                    const char *result, GError **error);
gboolean tm_store_outbox_mark_retry (TmStore *store, gint64 mail_id, gint64 next_attempt_at,
                                     const char *result, GError **error);
gboolean tm_store_outbox_mark_failed (TmStore *store, gint64 mail_id, gint64 at,
                                      const char *result, GError **error);
/* Inside a transaction, committed before the SMTP conversation: the mail is
 * being handed to the MTA since SINCE (wall clock). The outcome's mark_*
 * clears it. */
gboolean tm_store_outbox_mark_handing_over (TmStore *store, gint64 mail_id, gint64 since,
                                            GError **error);
/* Inside a transaction: the pending mails still marked as being handed over,
 * oldest first (GPtrArray of TmOutboxMail*), which at start-up means that
 * the daemon died during their delivery; and the clearing of that mark,
 * with RESULT as the row's last result. */
GPtrArray *tm_store_outbox_interrupted (TmStore *store, GError **error);
gboolean tm_store_outbox_clear_interrupted (TmStore *store, gint64 mail_id, const char *result,
                                            GError **error);
/* Newest first; STATUS NULL for all; LIMIT 0 for no limit. GPtrArray of
 * TmOutboxMail* that frees them, or NULL with *error. */
GPtrArray *tm_store_outbox_list (TmStore *store, const char *status, guint limit,
                                 GError **error);
void tm_outbox_mail_free (TmOutboxMail *mail);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TmOutboxMail, tm_outbox_mail_free)

void tm_ticket_free (TmTicket *ticket);
void tm_stored_message_free (TmStoredMessage *message);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TmTicket, tm_ticket_free)

#endif
