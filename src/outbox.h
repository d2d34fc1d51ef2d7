/* outbox.h - the worker threads that deliver the desk's own mail.
 *
 * The pipeline writes each acknowledgement into the outbox table in the same
 * transaction as its ticket; the workers ([smtp] workers threads of the
 * daemon, each with its own database connection, never two on one mail)
 * hand each one to the MTA with libcurl SMTP
 * (smtp_client.h) and records the outcome:
 *   accepted          status sent, event "ack-sent" on the ticket
 *   temporary failure attempts + 1, next attempt after a backoff that starts
 *                     at [smtp] retry_min and doubles up to retry_max; a
 *                     mail still undelivered give_up_after after it was
 *                     queued is marked failed ("ack-failed")
 *   permanent (5xx)   status failed, event "ack-failed", never retried
 * Every outcome is one log line starting with the queue id of the mail that
 * caused it: "QUEUEID: outbox: ack 7 for ticket 3 to x@y sent after 41 ms:
 * 250 2.0.0 Ok: queued as ...".
 *
 * Nothing here runs on the milter's mail path: tm_outbox_wake() only signals
 * a condition. Pending rows survive a restart (they are in the database),
 * and the worker picks them up when it starts. A crash between the MTA's
 * acceptance and the "sent" commit resends that one mail after the restart
 * (logged, with an ack-interrupted event): an acknowledgement may, rarely,
 * arrive twice, but is never lost.
 *
 * Usage (the daemon):
 *   TmOutbox *outbox = tm_outbox_start (config, store);   after privilege drop
 *   ... tm_outbox_wake (outbox) after each commit that queued a mail ...
 *   tm_outbox_stop (&outbox);   waits for a delivery in progress (bounded by
 *                               the SMTP timeouts)
 */
#ifndef TM_OUTBOX_H
#define TM_OUTBOX_H

#include "config.h"
#include "store.h"

typedef struct TmOutbox TmOutbox;  /* opaque */

/* Starts the workers on STORE, the daemon's own (shared with the milter
 * threads; its transactions are thread-safe). CONFIG and STORE must outlive
 * the outbox. Looks for deliveries a crash interrupted before starting. */
TmOutbox *tm_outbox_start (const TmConfig *config, TmStore *store) G_GNUC_WARN_UNUSED_RESULT;

/* Thread-safe and cheap: there may be new mail to deliver. NULL is fine. */
void tm_outbox_wake (TmOutbox *outbox);

/* Stops the threads and clears the caller's pointer; the store stays open. */
void tm_outbox_stop (TmOutbox **outbox);

/* The delay before attempt number ATTEMPTS + 1 after ATTEMPTS failures:
 * retry_min * 2^(attempts-1), at most retry_max. Exposed for tests. */
guint tm_outbox_backoff (const TmConfig *config, int attempts);

#endif
