/* outbox.c - deliver the outbox, one mail at a time, in a thread of its own.
 *
 * The loop: find the pending mail due first (one short read), deliver it
 * without holding any lock, record the outcome in one short transaction;
 * when nothing is due, sleep until the earliest next attempt, a wake-up from
 * the milter, or a stop. One mail at a time is enough for a desk (a few
 * acknowledgements per second at most) and keeps the MTA's load polite.
 *
 * A store error (database locked past the busy timeout, disk full) is
 * logged and the loop waits and tries again: the rows stay pending.
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

struct TmOutbox {
  const TmConfig *config;    /* borrowed */
  TmStore *store;            /* the worker's own connection */
  GThread *thread;
  GMutex lock;               /* guards wake_pending and stopping */
  GCond cond;
  gboolean wake_pending;
  gboolean stopping;
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
  while (!outbox->wake_pending && !outbox->stopping && seconds > 0)
    if (!g_cond_wait_until (&outbox->cond, &outbox->lock, deadline))
      break;
  outbox->wake_pending = FALSE;
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
record_outcome (TmOutbox *outbox, const TmOutboxMail *mail, TmSmtpResult result,
                gboolean give_up, gint64 next_attempt_at, const char *detail,
                GError **error)
{
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  if (!tm_store_begin (outbox->store, error))
    return FALSE;
  gboolean ok;
  gboolean final = result == TM_SMTP_SENT || result == TM_SMTP_PERMANENT || give_up;
  if (result == TM_SMTP_SENT)
    ok = tm_store_outbox_mark_sent (outbox->store, mail->id, now, detail, error);
  else if (final)
    ok = tm_store_outbox_mark_failed (outbox->store, mail->id, now, detail, error);
  else
    ok = tm_store_outbox_mark_retry (outbox->store, mail->id, next_attempt_at, detail, error);
  if (ok && final)
    {
      g_autofree char *event_detail = g_strdup_printf ("%s to %s: %s", mail->kind,
                                                       mail->recipient, detail);
      ok = tm_store_add_event (outbox->store, mail->ticket_id, 0, event_kind (result), now,
                               event_detail, error);
    }
  if (!ok)
    {
      tm_store_rollback (outbox->store);
      return FALSE;
    }
  return tm_store_commit (outbox->store, error);
}

static TmSmtpOptions
smtp_options (const TmConfig *config)
{
  TmSmtpOptions options = {
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

static void
deliver (TmOutbox *outbox, const TmOutboxMail *mail)
{
  const TmConfig *config = outbox->config;
  TmSmtpOptions options = smtp_options (config);
  g_autofree char *detail = NULL;
  TmSmtpResult result = tm_smtp_send (&options, mail->sender, mail->recipient, mail->data,
                                      mail->length, &detail);
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
      if (record_outcome (outbox, mail, result, give_up, now + delay, recorded, &error))
        return;
      tm_log_mail (LOG_ERR, queue_id, "outbox: cannot record the outcome of %s %"
                   G_GINT64_FORMAT ": %s; trying again", mail->kind, mail->id, error->message);
      if (!wait_for_work (outbox, STORE_ERROR_WAIT_S))
        return;
    }
}

static gpointer
worker_main (gpointer data)
{
  TmOutbox *outbox = data;
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (TmOutboxMail) mail = NULL;
      gint64 earliest = 0;
      gint64 now = g_get_real_time () / G_USEC_PER_SEC;
      gint64 wait_s;
      if (!tm_store_outbox_next_due (outbox->store, now, &mail, &earliest, &error))
        {
          tm_log (LOG_ERR, "outbox: cannot read the outbox: %s", error->message);
          wait_s = STORE_ERROR_WAIT_S;
        }
      else if (mail != NULL)
        {
          deliver (outbox, mail);
          wait_s = 0;
        }
      else
        wait_s = earliest != 0 ? CLAMP (earliest - now, 1, IDLE_WAIT_S) : IDLE_WAIT_S;
      if (!wait_for_work (outbox, wait_s))
        break;
    }
  return NULL;
}

TmOutbox *
tm_outbox_start (const TmConfig *config, GError **error)
{
  g_return_val_if_fail (config != NULL, NULL);
  TmStoreOptions options = {
    .busy_timeout_ms = config->busy_timeout_ms,
    .synchronous_full = config->synchronous_full,
    .create = FALSE,
  };
  TmStore *store = tm_store_open (config->store_path, &options, error);
  if (store == NULL)
    return NULL;
  TmOutbox *outbox = g_new0 (TmOutbox, 1);
  outbox->config = config;
  outbox->store = store;
  g_mutex_init (&outbox->lock);
  g_cond_init (&outbox->cond);
  /* The thread starts with every signal blocked: libmilter waits for
   * SIGTERM, SIGHUP and SIGINT in a thread of its own (sigwait), which works
   * only when no other thread can receive them. */
  sigset_t all, previous;
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &previous);
  outbox->thread = g_thread_new ("outbox", worker_main, outbox);
  pthread_sigmask (SIG_SETMASK, &previous, NULL);
  return outbox;
}

void
tm_outbox_wake (TmOutbox *outbox)
{
  if (outbox == NULL)
    return;
  g_mutex_lock (&outbox->lock);
  outbox->wake_pending = TRUE;
  g_cond_signal (&outbox->cond);
  g_mutex_unlock (&outbox->lock);
}

void
tm_outbox_stop (TmOutbox **outbox_ptr)
{
  TmOutbox *outbox = *outbox_ptr;
  if (outbox == NULL)
    return;
  g_mutex_lock (&outbox->lock);
  outbox->stopping = TRUE;
  g_cond_signal (&outbox->cond);
  g_mutex_unlock (&outbox->lock);
  g_thread_join (outbox->thread);
  tm_store_close (&outbox->store);
  g_mutex_clear (&outbox->lock);
  g_cond_clear (&outbox->cond);
  g_free (outbox);
  *outbox_ptr = NULL;
}
