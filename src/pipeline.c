/* pipeline.c - classify, thread and store one mail; say what to do with it.
 *
 * One call, one transaction: the lookups that decide the ticket and the
 * writes that record it happen under the same BEGIN IMMEDIATE, so two mails
 * of one thread arriving at once cannot both open a ticket, and a retried
 * mail always finds its first delivery. A dry run (commit FALSE) does all of
 * it and rolls back.
 *
 * Writes for a queue mail that is not a loop: the ticket (new, or its
 * updated_at and status), the message with its attachments and Message-ID,
 * and events: "created" for a new ticket, then one of "customer-message",
 * "agent-reply" or "automated-message", and "message-truncated" when the
 * milter kept only the first part of a large mail; and, when the mail is to
 * be acknowledged, the acknowledgement in the outbox (autoreply.c), so that
 * the ticket and its acknowledgement are committed together or not at all.
 *
 * Nothing here talks to the network or to the MTA.
 */
#include "pipeline.h"

#include <gmime/gmime.h>
#include <string.h>

#include "ack_mail.h"
#include "autoreply.h"
#include "language.h"
#include "subject_tag.h"

static void
header_change_free (gpointer data)
{
  TmHeaderChange *change = data;
  g_free (change->name);
  g_free (change->value);
  g_free (change);
}

static TmDecision *
decision_new (void)
{
  TmDecision *decision = g_new0 (TmDecision, 1);
  decision->tags = g_new0 (char *, 1);
  decision->recipients_add = g_ptr_array_new_with_free_func (g_free);
  decision->recipients_remove = g_ptr_array_new_with_free_func (g_free);
  decision->headers = g_ptr_array_new_with_free_func (header_change_free);
  return decision;
}


void
tm_decision_free (TmDecision **decision_ptr)
{
  TmDecision *decision = *decision_ptr;
  if (decision == NULL)
    return;
  tm_classification_clear (&decision->classification);
  g_free (decision->status);
  g_free (decision->priority);
  g_free (decision->team);
  g_free (decision->language);
  g_free (decision->customer_address);
  g_free (decision->customer_name);
  g_strfreev (decision->tags);
  g_free (decision->autoreply_template);
  g_free (decision->autoreply_language);
  g_free (decision->autoreply_reason);
  g_free (decision->autoreply_message_id);
  g_ptr_array_unref (decision->recipients_add);
  g_ptr_array_unref (decision->recipients_remove);
  g_ptr_array_unref (decision->headers);
  g_free (decision->subject);
  g_free (decision->subject_header);
  g_free (decision->reply_to);
  tm_rule_result_clear (&decision->rules);
  g_free (decision);
  *decision_ptr = NULL;
}

static void
add_header (TmDecision *decision, const char *name, char *value /* owned */)
{
  TmHeaderChange *change = g_new0 (TmHeaderChange, 1);
  change->name = g_strdup (name);
  change->value = value;
  g_ptr_array_add (decision->headers, change);
}

static const char *
direction_of (TmClass klass)
{
  switch (klass)
    {
    case TM_CLASS_AGENT: return "agent";
    case TM_CLASS_AUTOMATED: return "automated";
    default: return "customer";
    }
}

static const char *
event_of (TmClass klass)
{
  switch (klass)
    {
    case TM_CLASS_AGENT: return "agent-reply";
    case TM_CLASS_AUTOMATED: return "automated-message";
    default: return "customer-message";
    }
}

/* The status a ticket takes when a mail joins it: a customer writing again
 * reopens a ticket that was waiting or done; an agent's answer moves a new
 * ticket to open. NULL: unchanged. */
static const char *
status_after (const char *status, TmClass klass)
{
  if (klass == TM_CLASS_CUSTOMER
      && (strcmp (status, "pending") == 0 || strcmp (status, "resolved") == 0
          || strcmp (status, "closed") == 0))
    return "open";
  if (klass == TM_CLASS_AGENT && strcmp (status, "new") == 0)
    return "open";
  return NULL;
}

/* The subject as a header value: ASCII stays as it is, anything else becomes
 * RFC 2047 encoded words in UTF-8. CR, LF and other controls were already
 * replaced by the parser's unfolding; they are dropped here once more so that
 * a subject can never open a new header line. */
static char *
subject_header_value (const char *subject)
{
  /* ack_mail.c's encoder: controls become spaces, and text that only looks
   * like an encoded word is encoded too, so that a subject the customer
   * typed as "=?utf-8?q?a=0D=0A?=" is not decoded into a line break by the
   * agent's mail client. */
  return tm_ack_mail_header_value (subject);
}

static char *
idempotency_key (const TmMessage *message)
{
  if (message->message_id != NULL && *message->message_id != '\0')
    return g_strdup (message->message_id);
  return g_strconcat ("sha256:", message->content_hash, NULL);
}

/* Records the mail on the ticket (new or existing) inside the transaction. */
static gboolean
record_message (TmStore *store, const TmDecision *decision, const TmMessage *message,
                const TmEnvelope *envelope, const char *sender, const char *key,
                gint64 now, gint64 *message_row, GError **error)
{
  const TmQueue *queue = decision->classification.queue;
  g_autofree char *warnings = NULL;
  if (message->warnings->len > 0)
    {
      GString *joined = g_string_new (NULL);
      for (guint i = 0; i < message->warnings->len; i++)
        g_string_append_printf (joined, "%s%s", i > 0 ? "\n" : "",
                                (const char *) g_ptr_array_index (message->warnings, i));
      warnings = g_string_free (joined, FALSE);
    }

  TmStoredMessage stored = {
    .ticket_id = decision->ticket_id,
    .queue = queue->name,
    .message_key = (char *) key,
    .message_id = message->message_id,
    .direction = (char *) direction_of (decision->classification.klass),
    .sender = (char *) sender,
    .from_address = message->from_address,
    .from_name = message->from_name,
    .subject = message->subject,
    .mta_queue_id = (char *) envelope->mta_queue_id,
    .received_at = now,
    .body_text = message->body_text,
    .size = message->size,
    .truncated = message->truncated,
    .warnings = warnings,
    .attachments = message->attachments,
  };
  if (!tm_store_add_message (store, &stored, error))
    return FALSE;
  *message_row = stored.id;
  if (!tm_store_add_event (store, decision->ticket_id, stored.id,
                           event_of (decision->classification.klass), now, NULL, error))
    return FALSE;
  if (message->truncated)
    {
      g_autofree char *detail = g_strdup_printf ("kept the first part of a %" G_GSIZE_FORMAT
                                                 "-byte mail", message->size);
      if (!tm_store_add_event (store, decision->ticket_id, stored.id,
                               "message-truncated", now, detail, error))
        return FALSE;
    }
  return TRUE;
}

void
tm_pipeline_new_ticket_language (const TmConfig *config, const TmQueue *queue,
                                 const TmMessage *message, const char *rules_language,
                                 TmRuleResult *rules,
                                 char **detected, TmLanguageSource *detected_source,
                                 char **language, TmLanguageSource *source)
{
  const char *const *available = tm_template_set_languages (config->templates, "ack");
  *detected = tm_language_choose (NULL, message->content_language, message->subject,
                                  message->body_text, available, queue->language,
                                  detected_source);
  tm_rules_apply (config->rules, message,
                  rules_language != NULL ? rules_language : *detected, rules);
  *language = NULL;
  if (rules->template_language != NULL)
    {
      /* The rule's choice counts when that language has templates; asked
       * with no text, the chooser falls back to what detection found
       * without reading the mail again. */
      *language = tm_language_choose (rules->template_language, NULL, "", NULL, available,
                                      *detected, source);
      if (*source != TM_LANGUAGE_FROM_RULE)
        g_clear_pointer (language, g_free);
    }
  if (*language == NULL)
    {
      *language = g_strdup (*detected);
      *source = *detected_source;
    }
}

static gboolean
open_ticket (const TmConfig *config, TmStore *store, TmDecision *decision,
             const TmMessage *message, const char *sender, gint64 now, GError **error)
{
  const TmQueue *queue = decision->classification.queue;
  TmLanguageSource source, detected_source;
  g_autofree char *detected = NULL;
  g_autofree char *language = NULL;
  tm_pipeline_new_ticket_language (config, queue, message, NULL, &decision->rules,
                                   &detected, &detected_source, &language, &source);
  const TmRuleResult *rules = &decision->rules;
  g_strfreev (decision->tags);
  decision->tags = g_strdupv (rules->tags);

  const char *customer = message->from_address != NULL ? message->from_address : sender;
  const char *customer_name = message->from_name;
  if (message->reply_to_address != NULL
      && (g_strv_contains ((const char *const *) queue->form_senders, sender)
          || (message->from_address != NULL
              && g_strv_contains ((const char *const *) queue->form_senders,
                                  message->from_address))))
    {
      customer = message->reply_to_address;
      customer_name = NULL;
      decision->via_form = TRUE;
    }
  const char *team = rules->team != NULL ? rules->team : queue->team;
  const char *priority = rules->priority != NULL ? rules->priority : "normal";
  TmTicket ticket = {
    .queue = queue->name,
    .customer_address = (char *) customer,
    .customer_name = (char *) customer_name,
    .subject = message->subject,
    .status = (char *) "new",
    .priority = (char *) priority,
    .team = (char *) team,
    .language = language,
    .tags = decision->tags,
    .created_at = now,
    .updated_at = now,
  };
  if (!tm_store_create_ticket (store, &ticket, error))
    return FALSE;
  decision->ticket_id = ticket.id;
  decision->ticket_new = TRUE;
  decision->status = g_strdup ("new");
  decision->priority = g_strdup (priority);
  decision->team = g_strdup (team);
  decision->language = g_steal_pointer (&language);
  decision->language_source = tm_language_source_name (source);
  decision->customer_address = g_strdup (ticket.customer_address);
  decision->customer_name = g_strdup (ticket.customer_name);
  GString *detail = g_string_new (NULL);
  g_string_append_printf (detail, "language %s (%s)", decision->language,
                          decision->language_source);
  if (decision->via_form)
    g_string_append (detail, "; customer from a contact form's Reply-To");
  for (guint i = 0; i < rules->matches->len; i++)
    {
      const TmRuleMatch *match = g_ptr_array_index (rules->matches, i);
      g_string_append_printf (detail, "%s rule %s on %s", i == 0 ? ";" : ",", match->rule,
                              match->field);
    }
  gboolean ok = tm_store_add_event (store, ticket.id, 0, "created", now, detail->str, error);
  g_string_free (detail, TRUE);
  return ok;
}

/* Fills the decision from an existing ticket; with update, records that a
 * new mail joined it. */
static gboolean
join_ticket (TmStore *store, TmDecision *decision, gint64 ticket_id, gboolean update,
             gint64 now, GError **error)
{
  g_autoptr (TmTicket) ticket = NULL;
  if (!tm_store_get_ticket (store, ticket_id, &ticket, error))
    return FALSE;
  if (ticket == NULL)
    {
      g_set_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED,
                   "ticket %" G_GINT64_FORMAT " vanished inside a transaction", ticket_id);
      return FALSE;
    }
  const char *new_status = update ? status_after (ticket->status, decision->classification.klass) : NULL;
  if (update && !tm_store_touch_ticket (store, ticket_id, now, new_status, error))
    return FALSE;
  if (update && new_status != NULL)
    {
      g_autofree char *detail = g_strdup_printf ("%s -> %s", ticket->status, new_status);
      if (!tm_store_add_event (store, ticket_id, 0, "status-change", now, detail, error))
        return FALSE;
    }
  decision->ticket_id = ticket_id;
  decision->status = g_strdup (new_status != NULL ? new_status : ticket->status);
  decision->priority = g_strdup (ticket->priority);
  decision->team = g_strdup (ticket->team);
  decision->language = g_strdup (ticket->language);
  decision->customer_address = g_strdup (ticket->customer_address);
  decision->customer_name = g_strdup (ticket->customer_name);
  g_strfreev (decision->tags);
  decision->tags = g_strdupv (ticket->tags);
  return TRUE;
}

/* Why this mail gets no automatic reply, before looking at the store, or
 * NULL when it may get one (autoreply.h gives the order). Static string or
 * the classification's reason. */
static const char *
autoreply_refused_by_class (const TmDecision *decision)
{
  switch (decision->classification.klass)
    {
    case TM_CLASS_AUTOMATED: return decision->classification.reason;
    case TM_CLASS_LOOP: return "loop";
    case TM_CLASS_AGENT: return "agent";
    case TM_CLASS_NOT_SUPPORT: return "not-support";
    case TM_CLASS_CUSTOMER: return NULL;
    }
  g_assert_not_reached ();
}

/* Decides on the acknowledgement and, when it is to be sent, queues it. */
static gboolean
decide_autoreply (const TmConfig *config, TmStore *store, TmDecision *decision,
                  const TmMessage *message, const TmEnvelope *envelope, const char *sender,
                  gint64 now, GError **error)
{
  const TmQueue *queue = decision->classification.queue;
  const char *refusal = autoreply_refused_by_class (decision);
  if (refusal == NULL && decision->duplicate)
    refusal = "duplicate";
  if (refusal == NULL && !decision->ticket_new && !queue->ack_followups)
    refusal = "follow-up";
  if (refusal == NULL && !queue->ack)
    refusal = "disabled";
  g_autofree char *by_rule = decision->rules.suppressed_by != NULL
                             ? g_strconcat ("rule:", decision->rules.suppressed_by, NULL) : NULL;
  if (refusal == NULL && by_rule != NULL)
    refusal = by_rule;
  if (refusal == NULL)
    refusal = tm_autoreply_forbidden_by (config, message, sender, decision->customer_address,
                                         decision->via_form);
  if (refusal == NULL && queue->ack_rate_limit_s > 0)
    {
      gint64 last = 0;
      if (!tm_store_outbox_last_to (store, queue->name, decision->customer_address, &last, error))
        return FALSE;
      if (last != 0 && now - last < (gint64) queue->ack_rate_limit_s)
        refusal = "rate-limit";
    }

  gboolean closed = queue->hours != NULL && !tm_hours_is_open (queue->hours, now);
  const char *template_name = closed ? "after-hours" : "ack";
  /* The ticket's language when it has that template, else the queue's. */
  const char *language = decision->language;
  if (language == NULL
      || tm_template_set_lookup (config->templates, language, template_name) == NULL)
    language = queue->language;
  decision->autoreply_template = g_strdup (template_name);
  decision->autoreply_language = g_strdup (language);
  if (refusal != NULL)
    {
      decision->autoreply_reason = g_strdup (refusal);
      return TRUE;
    }

  TmAutoreplyRequest request = {
    .queue = queue,
    .ticket_id = decision->ticket_id,
    .customer_address = decision->customer_address,
    .customer_name = decision->customer_name,
    .template_name = template_name,
    .language = language,
    .origin_queue_id = envelope->mta_queue_id,
  };
  if (!tm_autoreply_queue (config, store, &request, message, now,
                           &decision->autoreply_message_id, error))
    return FALSE;
  decision->autoreply_send = TRUE;
  decision->autoreply_reason = g_strdup (closed ? "after-hours"
                                         : decision->ticket_new ? "new-ticket" : "follow-up");
  return TRUE;
}

/* X-Ticket-Customer: what an agent wants to know about the customer before
 * answering, "open=1 total=3 last=1040" (other tickets than this one). */
static gboolean
note_customer_history (TmStore *store, TmDecision *decision, GError **error)
{
  TmCustomerHistory history;
  if (!tm_store_customer_history (store, decision->customer_address, decision->ticket_id,
                                  &history, error))
    return FALSE;
  /* Beyond the limit both counts are lower bounds, said with a "+". */
  const char *more = history.capped ? "+" : "";
  char *value = g_strdup_printf ("%s; open=%" G_GINT64_FORMAT "%s; total=%" G_GINT64_FORMAT
                                 "%s; last=%" G_GINT64_FORMAT, decision->customer_address,
                                 history.open, more, history.total, more, history.last_ticket);
  /* Headers the milter adds are ASCII (pipeline.h): an address with UTF-8
   * in it (SMTPUTF8), or one that looks like an encoded word, goes in as
   * RFC 2047 encoded words like X-Ticket-Tags; every other value as it is. */
  gboolean plain = strstr (value, "=?") == NULL;
  for (const char *c = value; plain && *c != '\0'; c++)
    plain = (guchar) *c >= 0x20 && (guchar) *c < 0x7f;
  if (!plain)
    {
      char *encoded = subject_header_value (value);
      g_free (value);
      value = encoded;
    }
  add_header (decision, "X-Ticket-Customer", value);
  return TRUE;
}

/* Where the mail goes: the team's mailbox instead of the queue address. */
static void
route (const TmConfig *config, TmDecision *decision, const TmEnvelope *envelope)
{
  const TmQueue *queue = decision->classification.queue;
  TmClass klass = decision->classification.klass;
  if (decision->team == NULL || (klass != TM_CLASS_CUSTOMER && klass != TM_CLASS_AUTOMATED))
    return;
  const TmTeam *team = tm_config_team_by_name (config, decision->team);
  if (team == NULL)
    return;  /* a team renamed in the configuration since the ticket was made */
  gboolean already = FALSE;
  for (const char *const *rcpt = envelope->recipients; rcpt != NULL && *rcpt != NULL; rcpt++)
    {
      g_autofree char *address = tm_address_normalize (*rcpt);
      if (strcmp (address, team->mailbox) == 0)
        already = TRUE;
      else if (!queue->keep_address
               && g_strv_contains ((const char *const *) queue->addresses, address))
        g_ptr_array_add (decision->recipients_remove, g_steal_pointer (&address));
    }
  if (!already)
    g_ptr_array_add (decision->recipients_add, g_strdup (team->mailbox));
  /* The agent's Reply goes back through the desk, tag and all. */
  decision->reply_to = g_strdup (queue->addresses[0]);
}

/* Everything that happens inside the transaction. */
static gboolean
decide_in_store (const TmConfig *config, TmStore *store, TmDecision *decision,
                 const TmMessage *message, const TmEnvelope *envelope, gint64 now,
                 GError **error)
{
  /* The envelope sender as stored: lower-case, no brackets, "" for <>. */
  g_autofree char *sender = tm_address_normalize (envelope->sender != NULL ? envelope->sender : "");
  const TmQueue *queue = decision->classification.queue;
  gint64 threaded_ticket = 0;
  if (!tm_thread_find (store, queue, message, &threaded_ticket, &decision->threaded_by,
                       &decision->ignored_tag, error))
    return FALSE;

  g_autofree char *key = idempotency_key (message);
  gint64 stored_ticket = 0;
  if (!tm_store_find_message (store, queue->name, key, &stored_ticket, error))
    return FALSE;
  if (stored_ticket != 0)
    {
      /* An MTA's retry of a mail we already hold: same answer, no writes. */
      decision->duplicate = TRUE;
      return join_ticket (store, decision, stored_ticket, FALSE, now, error)
        && decide_autoreply (config, store, decision, message, envelope, sender, now, error)
        && note_customer_history (store, decision, error);
    }

  if (threaded_ticket != 0)
    {
      if (!join_ticket (store, decision, threaded_ticket, TRUE, now, error))
        return FALSE;
    }
  else if (!open_ticket (config, store, decision, message, sender, now, error))
    return FALSE;

  return record_message (store, decision, message, envelope, sender, key, now,
                         &decision->message_row, error)
    && decide_autoreply (config, store, decision, message, envelope, sender, now, error)
    && note_customer_history (store, decision, error);
}

TmDecision *
tm_pipeline_run (const TmConfig *config, TmStore *store, const TmMessage *message,
                 const TmEnvelope *envelope, gint64 now, gboolean commit, GError **error)
{
  g_return_val_if_fail (config != NULL && store != NULL && message != NULL && envelope != NULL, NULL);
  TmDecision *decision = decision_new ();
  tm_classify (config, message, envelope, &decision->classification);
  decision->truncated = message->truncated;
  const TmQueue *queue = decision->classification.queue;

  if (queue != NULL && decision->classification.klass != TM_CLASS_LOOP)
    {
      if (!tm_store_begin (store, error))
        {
          tm_decision_free (&decision);
          return NULL;
        }
      if (!decide_in_store (config, store, decision, message, envelope, now, error))
        {
          tm_store_rollback (store);
          tm_decision_free (&decision);
          return NULL;
        }
      if (!commit)
        {
          tm_store_rollback (store);
          decision->message_row = 0;
        }
      else if (!tm_store_commit (store, error))
        {
          tm_decision_free (&decision);
          return NULL;
        }

      add_header (decision, "X-Ticket-ID", g_strdup_printf ("%" G_GINT64_FORMAT, decision->ticket_id));
      add_header (decision, "X-Ticket-Queue", g_strdup (queue->name));
      add_header (decision, "X-Ticket-Priority", g_strdup (decision->priority));
      if (decision->team != NULL)
        add_header (decision, "X-Ticket-Team", g_strdup (decision->team));
      if (decision->tags[0] != NULL)
        {
          g_autofree char *tags = g_strjoinv (", ", decision->tags);
          add_header (decision, "X-Ticket-Tags", subject_header_value (tags));
        }
      route (config, decision, envelope);
      if (!tm_subject_tag_is_exactly (message->subject, queue->tag_prefix, decision->ticket_id))
        {
          decision->subject = tm_subject_tag_apply (message->subject, queue->tag_prefix,
                                                    decision->ticket_id);
          decision->subject_header = subject_header_value (decision->subject);
        }
    }

  if (decision->autoreply_reason == NULL)
    {
      /* No store work was done: not for a queue, or a loop. */
      decision->autoreply_template = g_strdup ("ack");
      decision->autoreply_language = g_strdup (queue != NULL ? queue->language : "en");
      decision->autoreply_reason = g_strdup (autoreply_refused_by_class (decision));
    }
  if (!commit)
    g_clear_pointer (&decision->autoreply_message_id, g_free);
  return decision;
}

char *
tm_decision_summary (const TmDecision *decision)
{
  GString *line = g_string_new (NULL);
  const TmClassification *classification = &decision->classification;
  g_string_append_printf (line, "class=%s reason=%s", tm_class_name (classification->klass),
                          classification->reason);
  if (classification->queue != NULL)
    g_string_append_printf (line, " queue=%s", classification->queue->name);
  if (decision->ticket_id != 0)
    g_string_append_printf (line, " ticket=%" G_GINT64_FORMAT " new=%s threaded_by=%s",
                            decision->ticket_id, decision->ticket_new ? "yes" : "no",
                            tm_threaded_by_name (decision->threaded_by));
  if (decision->duplicate)
    g_string_append (line, " duplicate=yes");
  if (decision->ignored_tag != 0)
    g_string_append_printf (line, " ignored_tag=%" G_GINT64_FORMAT, decision->ignored_tag);
  if (decision->subject != NULL)
    g_string_append (line, " subject=tagged");
  if (decision->language_source != NULL)
    g_string_append_printf (line, " language=%s/%s", decision->language,
                            decision->language_source);
  g_string_append_printf (line, " ack=%s:%s", decision->autoreply_send ? "queued" : "no",
                          decision->autoreply_reason);
  if (decision->autoreply_send)
    g_string_append_printf (line, "/%s/%s", decision->autoreply_template,
                            decision->autoreply_language);
  return g_string_free (line, FALSE);
}
