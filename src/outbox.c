/* outbox.c - deliver the outbox, one mail at a time, in a thread of its own.
 *
 * [smtp] workers threads (default 4) run the same loop on the daemon's own
 * store (so that their bookkeeping shares the milter's group commits instead
 * of fighting them for SQLite's write lock from connections of their own): read the pending mails that are due (one
 * short read), take the first that no other worker is delivering (a set of
 * ids in flight, under the outbox's mutex), deliver it without holding any
 * lock, record the outcome in one short transaction; when nothing is due,
 * sleep until the earliest next attempt, a wake-up from the milter, or a
 * stop. Several workers keep a burst of new tickets from queueing behind one
 * SMTP conversation at a time (each costs the MTA a full transaction).
 *
 * A store error (database locked past the busy timeout, disk full) is
 * logged and the loop waits and tries again: the rows stay pending.
 *
 * Delivery is at least once. Before a mail's SMTP conversation, the worker
 * commits a mark on its row (handing_over_since), cleared with the outcome.
 * If the daemon dies in between, the MTA may or may not have the mail, and
 * SMTP gives no way to ask; at the next start the mail is sent again, and
 * the log and an ack-interrupted event on the ticket say so. The window is
 * the few milliseconds from the MTA's reply to our commit of it.
 */
#include "outbox.h"

#include <pthread.h>
#include <signal.h>

#include "log.h"
#include "smtp_client.h"
#include "store.h"

/* How long to sleep when there is nothing pending at all, and after a store
 * error; a wake-up cuts either short. */
#define IDLE_WAIT_S 60
#define STORE_ERROR_WAIT_S 5
/* A look at the outbox reads as many due mails as there are workers: at
 * most the others' are in flight, so one of them is free for the caller,
 * and no more rows (each with its whole mail) are read than that needs. */

typedef struct TmOutboxWorker TmOutboxWorker;

struct TmOutbox {
  const TmConfig *config;    /* borrowed */
  GPtrArray *workers;        /* of TmOutboxWorker* */
  GMutex lock;               /* guards wakes, stopping and in_flight */
  GCond cond;
  guint wakes;               /* wake-ups not yet taken by a worker */
  gboolean stopping;
  TmSmtpCancel *cancel;      /* triggered on stop: cuts an SMTP wait short */
  GHashTable *in_flight;     /* ids (gint64*) being delivered right now */
};

struct TmOutboxWorker {
  TmOutbox *outbox;
  TmStore *store;            /* the daemon's store, borrowed */
  GThread *thread;
};

guint
tm_outbox_backoff (const TmConfig *config, int attempts)
{
  guint64 delay = MAX (config->smtp_retry_min_s, 1);
  for (int i = 1; i < attempts && delay < config->smtp_retry_max_s; i++)
    delay *= 2;
  return (guint) MIN (delay, MAX (config->smtp_retry_max_s, 1));
}

/* Sleeps until SECONDS have passed (0: not at all), a wake-up or a stop.
 * Returns FALSE when the worker is to stop. */
static gboolean
wait_for_work (TmOutbox *outbox, gint64 seconds)
{
  g_mutex_lock (&outbox->lock);
  gint64 deadline = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
  while (outbox->wakes == 0 && !outbox->stopping && seconds > 0)
    if (!g_cond_wait_until (&outbox->cond, &outbox->lock, deadline))
      break;
  if (outbox->wakes > 0)
    outbox->wakes--;
  gboolean go_on = !outbox->stopping;
  g_mutex_unlock (&outbox->lock);
  return go_on;
}

static const char *
event_kind (TmSmtpResult result)
{
  return result == TM_SMTP_SENT ? "ack-sent" : "ack-failed";
}

/* Records one attempt's outcome: the row, and on a final outcome an event on
 * the ticket, in one transaction. */
static gboolean
record_outcome (TmOutboxWorker *worker, const TmOutboxMail *mail, TmSmtpResult result,
                gboolean give_up, gint64 next_attempt_at, const char *detail,
                GError **error)
{
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  TmStore *store = worker->store;
  if (!tm_store_begin (store, error))
    return FALSE;
  gboolean ok;
  gboolean final = result == TM_SMTP_SENT || result == TM_SMTP_PERMANENT || give_up;
  if (result == TM_SMTP_SENT)
    ok = tm_store_outbox_mark_sent (store, mail->id, now, detail, error);
  else if (final)
    ok = tm_store_outbox_mark_failed (store, mail->id, now, detail, error);
  else
    ok = tm_store_outbox_mark_retry (store, mail->id, next_attempt_at, detail, error);
  if (ok && final)
    {
      g_autofree char *event_detail = g_strdup_printf ("%s to %s: %s", mail->kind,
                                                       mail->recipient, detail);
      ok = tm_store_add_event (store, mail->ticket_id, 0, event_kind (result), now,
                               event_detail, error);
    }
  if (!ok)
    {
      tm_store_rollback (store);
      return FALSE;
    }
  return tm_store_commit (store, error);
}

static TmSmtpOptions
smtp_options (TmOutbox *outbox)
{
  const TmConfig *config = outbox->config;
  TmSmtpOptions options = {
    .cancel = outbox->cancel,
    .url = config->smtp_url,
    .starttls = config->smtp_starttls,
    .verify_peer = config->smtp_verify_peer,
    .ca_file = config->smtp_ca_file,
    .username = config->smtp_username,
    .password = config->smtp_password,
    .helo_name = config->smtp_helo_name,
    .connect_timeout_s = config->smtp_connect_timeout_s,
    .timeout_s = config->smtp_timeout_s,
  };
  return options;
}

/* Commits the mark that MAIL is being handed to the MTA, before the SMTP
 * conversation begins. */
static gboolean
mark_handing_over (TmOutboxWorker *worker, const TmOutboxMail *mail, GError **error)
{
  TmStore *store = worker->store;
  if (!tm_store_begin (store, error))
    return FALSE;
  if (!tm_store_outbox_mark_handing_over (store, mail->id, g_get_real_time () / G_USEC_PER_SEC,
                                          error))
    {
      tm_store_rollback (store);
      return FALSE;
    }
  return tm_store_commit (store, error);
}

typedef struct {
  TmOutboxWorker *worker;
  const TmOutboxMail *mail;
} Delivery;

static void conclude (TmSmtpResult result, const char *detail, gpointer data);

/* One delivery attempt and its recorded outcome. FALSE when the attempt
 * could not even start (the store refused the mark): the mail stays
 * pending, and the caller waits before trying again. */
static gboolean
deliver (TmOutboxWorker *worker, const TmOutboxMail *mail)
{
  TmOutbox *outbox = worker->outbox;
  g_autoptr (GError) mark_error = NULL;
  if (!mark_handing_over (worker, mail, &mark_error))
    {
      tm_log_mail (LOG_ERR, mail->origin_queue_id, "outbox: cannot start delivering %s %"
                   G_GINT64_FORMAT ": %s; trying again later", mail->kind, mail->id,
                   mark_error->message);
      return FALSE;
    }
  TmSmtpOptions options = smtp_options (outbox);
  Delivery delivery = { worker, mail };
  options.on_outcome = conclude;
  options.on_outcome_data = &delivery;
  g_autofree char *detail = NULL;
  tm_smtp_send (&options, mail->sender, mail->recipient, mail->data, mail->length, &detail);
  return TRUE;
}

/* The outcome, logged and recorded as soon as it is known: tm_smtp_send()
 * calls this before saying goodbye to the server (QUIT and its reply), so
 * that a mail the MTA took is marked sent without that round trip: every
 * millisecond between the MTA's 250 and our commit is a millisecond in which
 * a crash sends the mail twice. */
static void
conclude (TmSmtpResult result, const char *detail, gpointer data)
{
  const Delivery *delivery = data;
  TmOutboxWorker *worker = delivery->worker;
  const TmOutboxMail *mail = delivery->mail;
  TmOutbox *outbox = worker->outbox;
  const TmConfig *config = outbox->config;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  int attempts = mail->attempts + 1;
  /* The give-up clock runs from when the mail was queued (wall clock). */
  gint64 queued_at = mail->queued_us / G_USEC_PER_SEC;
  guint delay = tm_outbox_backoff (config, attempts);
  gboolean give_up = result == TM_SMTP_TEMPORARY
                     && now + delay - queued_at > (gint64) config->smtp_give_up_after_s;

  const char *queue_id = mail->origin_queue_id;
  double latency_ms = (double) (g_get_real_time () - mail->queued_us) / 1000.0;
  switch (result)
    {
    case TM_SMTP_SENT:
      tm_log_mail (LOG_INFO, queue_id, "outbox: %s %" G_GINT64_FORMAT " for ticket %"
                   G_GINT64_FORMAT " to %s sent after %.1f ms (attempt %d): %s",
                   mail->kind, mail->id, mail->ticket_id, mail->recipient, latency_ms,
                   attempts, detail);
      break;
    case TM_SMTP_PERMANENT:
      tm_log_mail (LOG_WARNING, queue_id, "outbox: %s %" G_GINT64_FORMAT " for ticket %"
                   G_GINT64_FORMAT " to %s refused, not retried: %s",
                   mail->kind, mail->id, mail->ticket_id, mail->recipient, detail);
      break;
    case TM_SMTP_TEMPORARY:
      if (give_up)
        tm_log_mail (LOG_WARNING, queue_id, "outbox: %s %" G_GINT64_FORMAT " for ticket %"
                     G_GINT64_FORMAT " to %s given up after %d attempts: %s",
                     mail->kind, mail->id, mail->ticket_id, mail->recipient, attempts, detail);
      else
        tm_log_mail (LOG_NOTICE, queue_id, "outbox: %s %" G_GINT64_FORMAT " for ticket %"
                     G_GINT64_FORMAT " to %s deferred, next attempt in %u s: %s",
                     mail->kind, mail->id, mail->ticket_id, mail->recipient, delay, detail);
      break;
    }

  g_autofree char *recorded = give_up ? g_strdup_printf ("gave up after %d attempts: %s",
                                                         attempts, detail)
                                      : g_strdup (detail);
  /* A store that fails here is retried: the outcome must not be lost, or a
   * sent mail would be sent again. */
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      if (record_outcome (worker, mail, result, give_up, now + delay, recorded, &error))
        return;
      tm_log_mail (LOG_ERR, queue_id, "outbox: cannot record the outcome of %s %"
                   G_GINT64_FORMAT ": %s; trying again", mail->kind, mail->id, error->message);
      if (!wait_for_work (outbox, STORE_ERROR_WAIT_S))
        return;
    }
}

/* Reads the due mails and takes the first that no other worker is
 * delivering, or NULL (with *due_count how many were due). The read happens
 * under the outbox's mutex, which a worker also needs to give a mail back
 * after committing its outcome: so a mail seen pending here is either still
 * pending or still in flight, and never delivered twice. The caller gives
 * the mail back with release_mail(). */
static TmOutboxMail *
take_mail (TmOutboxWorker *worker, gint64 now, guint *due_count, gint64 *earliest,
           GError **error)
{
  TmOutbox *outbox = worker->outbox;
  TmOutboxMail *taken = NULL;
  g_mutex_lock (&outbox->lock);
  /* The read needs the store's lock like any other use of the shared
   * connection; it writes nothing, so it ends with a rollback. */
  g_autoptr (GPtrArray) mails = NULL;
  if (tm_store_begin (worker->store, error))
    {
      mails = tm_store_outbox_due (worker->store, now, outbox->workers->len, earliest, error);
      tm_store_rollback (worker->store);
    }
  *due_count = mails != NULL ? mails->len : 0;
  for (guint i = 0; mails != NULL && i < mails->len && taken == NULL; i++)
    {
      TmOutboxMail *mail = g_ptr_array_index (mails, i);
      if (!g_hash_table_contains (outbox->in_flight, &mail->id))
        {
          taken = g_ptr_array_steal_index (mails, i);
          g_hash_table_add (outbox->in_flight, g_memdup2 (&taken->id, sizeof taken->id));
        }
    }
  g_mutex_unlock (&outbox->lock);
  return taken;
}

static void
release_mail (TmOutbox *outbox, const TmOutboxMail *mail)
{
  g_mutex_lock (&outbox->lock);
  g_hash_table_remove (outbox->in_flight, &mail->id);
  g_mutex_unlock (&outbox->lock);
}

static gpointer
worker_main (gpointer data)
{
  TmOutboxWorker *worker = data;
  TmOutbox *outbox = worker->outbox;
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      gint64 earliest = 0;
      gint64 now = g_get_real_time () / G_USEC_PER_SEC;
      gint64 wait_s;
      guint due = 0;
      g_autoptr (TmOutboxMail) mail = take_mail (worker, now, &due, &earliest, &error);
      if (error != NULL)
        {
          tm_log (LOG_ERR, "outbox: cannot read the outbox: %s", error->message);
          wait_s = STORE_ERROR_WAIT_S;
        }
      else if (due > 0)
        {
          if (mail != NULL)
            {
              wait_s = deliver (worker, mail) ? 0 : STORE_ERROR_WAIT_S;
              release_mail (outbox, mail);
            }
          else
            wait_s = 1;      /* every due mail is with another worker */
        }
      else
        wait_s = earliest != 0 ? CLAMP (earliest - now, 1, IDLE_WAIT_S) : IDLE_WAIT_S;
      if (!wait_for_work (outbox, wait_s))
        break;
    }
  return NULL;
}

/* At start-up: mail that a worker was handing to the MTA when the daemon
 * died. The MTA may have taken it before the death, and there is no way to
 * ask: it is sent again (an acknowledgement twice is better than none),
 * and each such mail is logged and noted on its ticket, so that a customer's
 * duplicate can be explained. A store error here is logged: the rows stay
 * marked and are sent again all the same. */
static void
recover_interrupted (TmOutboxWorker *worker)
{
  g_autoptr (GError) error = NULL;
  TmStore *store = worker->store;
  if (!tm_store_begin (store, &error))
    {
      tm_log (LOG_ERR, "outbox: cannot look for interrupted deliveries: %s", error->message);
      return;
    }
  g_autoptr (GPtrArray) mails = tm_store_outbox_interrupted (store, &error);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  for (guint i = 0; mails != NULL && i < mails->len && error == NULL; i++)
    {
      const TmOutboxMail *mail = g_ptr_array_index (mails, i);
      tm_log_mail (LOG_WARNING, mail->origin_queue_id, "outbox: %s %" G_GINT64_FORMAT
                   " for ticket %" G_GINT64_FORMAT " to %s was being handed over when the "
                   "daemon stopped; sending it again (the MTA may already have it)",
                   mail->kind, mail->id, mail->ticket_id, mail->recipient);
      g_autofree char *detail = g_strdup_printf ("%s %" G_GINT64_FORMAT " to %s: delivery "
                                                 "interrupted, sent again", mail->kind,
                                                 mail->id, mail->recipient);
      if (tm_store_outbox_clear_interrupted (store, mail->id, "interrupted by a stop of the daemon",
                                             &error))
        tm_store_add_event (store, mail->ticket_id, 0, "ack-interrupted", now, detail, &error);
    }
  if (error != NULL)
    {
      tm_store_rollback (store);
      tm_log (LOG_ERR, "outbox: cannot record interrupted deliveries: %s", error->message);
      return;
    }
  if (!tm_store_commit (store, &error))
    tm_log (LOG_ERR, "outbox: cannot record interrupted deliveries: %s", error->message);
}

static void
worker_free (gpointer data)
{
  g_free (data);
}

TmOutbox *
tm_outbox_start (const TmConfig *config, TmStore *store)
{
  g_return_val_if_fail (config != NULL && store != NULL, NULL);
  TmOutbox *outbox = g_new0 (TmOutbox, 1);
  outbox->config = config;
  outbox->workers = g_ptr_array_new_with_free_func (worker_free);
  outbox->in_flight = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  outbox->cancel = tm_smtp_cancel_new ();
  g_mutex_init (&outbox->lock);
  g_cond_init (&outbox->cond);
  for (guint i = 0; i < config->smtp_workers; i++)
    {
      TmOutboxWorker *worker = g_new0 (TmOutboxWorker, 1);
      worker->outbox = outbox;
      worker->store = store;
      g_ptr_array_add (outbox->workers, worker);
    }
  recover_interrupted (g_ptr_array_index (outbox->workers, 0));
  /* The threads start with every signal blocked: the milter server waits
   * for SIGTERM, SIGHUP and SIGINT on a signalfd in the main thread, which
   * works only when no other thread can receive them. */
  sigset_t all, previous;
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &previous);
  for (guint i = 0; i < outbox->workers->len; i++)
    {
      TmOutboxWorker *worker = g_ptr_array_index (outbox->workers, i);
      g_autofree char *name = g_strdup_printf ("outbox-%u", i);
      worker->thread = g_thread_new (name, worker_main, worker);
    }
  pthread_sigmask (SIG_SETMASK, &previous, NULL);
  return outbox;
}

void
tm_outbox_wake (TmOutbox *outbox)
{
  if (outbox == NULL)
    return;
  g_mutex_lock (&outbox->lock);
  /* Bounded: more pending wake-ups than workers would only spin them. */
  if (outbox->wakes < outbox->workers->len)
    outbox->wakes++;
  g_cond_signal (&outbox->cond);
  g_mutex_unlock (&outbox->lock);
}

void
tm_outbox_stop (TmOutbox **outbox_ptr)
{
  TmOutbox *outbox = *outbox_ptr;
  if (outbox == NULL)
    return;
  /* A worker waiting on a silent server would hold the stop up to its
   * timeout; the mail it gives up stays pending for the next start. */
  tm_smtp_cancel_trigger (outbox->cancel);
  g_mutex_lock (&outbox->lock);
  outbox->stopping = TRUE;
  g_cond_broadcast (&outbox->cond);
  g_mutex_unlock (&outbox->lock);
  for (guint i = 0; i < outbox->workers->len; i++)
    {
      TmOutboxWorker *worker = g_ptr_array_index (outbox->workers, i);
      if (worker->thread != NULL)
        g_thread_join (worker->thread);
    }
  g_ptr_array_unref (outbox->workers);
  g_hash_table_unref (outbox->in_flight);
  tm_smtp_cancel_free (outbox->cancel);
  g_mutex_clear (&outbox->lock);
  g_cond_clear (&outbox->cond);
  g_free (outbox);
  *outbox_ptr = NULL;
}
