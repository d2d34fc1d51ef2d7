/* autoreply.c - may this mail be answered, and the answer in the outbox.
 *
 * The checks here are the ones that concern only the automatic reply: a
 * mail from noreply@ or one marked as spam is still a customer's mail and
 * still makes a ticket, but answering it would be backscatter. The RFC 3834
 * checks that make a mail "automated" live in classify.c, because they also
 * decide how the mail is recorded.
 *
 * Queueing composes the whole mail now, inside the ticket's transaction, so
 * that the outbox worker only has to deliver bytes, and a restart, a crash or
 * a retried mail can neither lose the acknowledgement nor send it twice.
 */
#include "autoreply.h"

#include <string.h>

#include "ack_mail.h"
#include "subject_tag.h"
#include "template.h"

/* local part of ADDRESS is NAME, or starts with NAME and one of "-+._". */
static gboolean
local_part_matches (const char *address, const char *name)
{
  const char *at = strrchr (address, '@');
  gsize length = at != NULL ? (gsize) (at - address) : strlen (address);
  gsize name_length = strlen (name);
  if (length < name_length || g_ascii_strncasecmp (address, name, name_length) != 0)
    return FALSE;
  return length == name_length || strchr ("-+._", address[name_length]) != NULL;
}

static gboolean
is_no_reply (const TmConfig *config, const char *address)
{
  if (address == NULL || *address == '\0')
    return FALSE;
  for (char **name = config->no_reply_senders; *name != NULL; name++)
    if (local_part_matches (address, *name))
      return TRUE;
  return FALSE;
}

/* Our own addresses: a queue's, a team mailbox. An acknowledgement to one of
 * them would be the desk talking to itself. */
static gboolean
is_own_address (const TmConfig *config, const char *address)
{
  if (tm_config_queue_for_address (config, address) != NULL)
    return TRUE;
  for (guint i = 0; i < config->teams->len; i++)
    {
      const TmTeam *team = g_ptr_array_index (config->teams, i);
      if (g_ascii_strcasecmp (team->mailbox, address) == 0)
        return TRUE;
    }
  return FALSE;
}

/* X-Auto-Response-Suppress (Microsoft): a comma-separated list of kinds of
 * automatic answer the sender does not want. */
static gboolean
suppresses_autoreply (const char *value)
{
  static const char *const kinds[] = { "all", "autoreply", "oof", NULL };
  g_auto (GStrv) entries = g_strsplit_set (value, ",; \t", -1);
  for (char **entry = entries; *entry != NULL; entry++)
    {
      g_autofree char *lower = g_ascii_strdown (*entry, -1);
      if (g_strv_contains (kinds, lower))
        return TRUE;
    }
  return FALSE;
}

static gboolean
is_marked_spam (const TmConfig *config, const TmMessage *message)
{
  if (config->spam_header == NULL)
    return FALSE;
  for (guint i = 0; i < message->headers->len; i++)
    {
      const TmHeader *header = g_ptr_array_index (message->headers, i);
      if (g_ascii_strcasecmp (header->name, config->spam_header) != 0)
        continue;
      g_autofree char *word = tm_header_first_word (header->value);
      if (g_ascii_strcasecmp (word, config->spam_value) == 0)
        return TRUE;
    }
  return FALSE;
}

const char *
tm_autoreply_forbidden_by (const TmConfig *config, const TmMessage *message,
                           const char *sender, const char *recipient, gboolean via_form)
{
  g_return_val_if_fail (config != NULL && message != NULL && sender != NULL, NULL);
  /* An address the acknowledgement cannot carry in its To: (non-ASCII,
   * quoted local parts, junk) gets none: a mail without To: to an address
   * that needs SMTPUTF8 would only bounce, or worse, be delivered. */
  if (recipient == NULL || !tm_ack_mail_address_is_plausible (recipient))
    return "no-address";
  if (is_own_address (config, recipient))
    return "own-address";
  if (is_no_reply (config, recipient)
      || (!via_form && (is_no_reply (config, sender)
                        || is_no_reply (config, message->from_address))))
    return "no-reply-sender";
  for (guint i = 0; i < message->headers->len; i++)
    {
      const TmHeader *header = g_ptr_array_index (message->headers, i);
      if (g_ascii_strcasecmp (header->name, "X-Auto-Response-Suppress") == 0
          && suppresses_autoreply (header->value))
        return "x-auto-response-suppress";
    }
  if (is_marked_spam (config, message))
    return "spam";
  return NULL;
}

/* "4" for 4 hours, "1.5" for 90 minutes. */
static char *
hours_text (guint seconds)
{
  if (seconds % 3600 == 0)
    return g_strdup_printf ("%u", seconds / 3600);
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];
  return g_strdup (g_ascii_formatd (buffer, sizeof buffer, "%.1f", seconds / 3600.0));
}

static char *
format_utc (gint64 when)
{
  g_autoptr (GDateTime) time = g_date_time_new_from_unix_utc (when);
  return time != NULL ? g_date_time_format (time, "%Y-%m-%d %H:%M UTC") : g_strdup ("");
}

/* The customer's subject without our tag, so that a template can put the tag
 * where it wants it. */
static char *
subject_without_tag (const char *subject, const TmQueue *queue, gint64 ticket_id)
{
  g_autofree char *tagged = tm_subject_tag_apply (subject, queue->tag_prefix, ticket_id);
  g_autofree char *tag = g_strdup_printf ("[%s#%" G_GINT64_FORMAT "]", queue->tag_prefix,
                                          ticket_id);
  const char *rest = tagged;
  if (g_str_has_prefix (rest, tag))
    rest += strlen (tag);
  while (*rest == ' ')
    rest++;
  return g_strdup (rest);
}

GHashTable *
tm_autoreply_values (const TmAutoreplyRequest *request, const TmMessage *message, gint64 now)
{
  const TmQueue *queue = request->queue;
  GHashTable *values = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g_hash_table_insert (values, "ticket.id",
                       g_strdup_printf ("%" G_GINT64_FORMAT, request->ticket_id));
  g_hash_table_insert (values, "ticket.tag",
                       g_strdup_printf ("[%s#%" G_GINT64_FORMAT "]", queue->tag_prefix,
                                        request->ticket_id));
  g_hash_table_insert (values, "ticket.subject",
                       subject_without_tag (message->subject, queue, request->ticket_id));
  g_hash_table_insert (values, "customer.name",
                       g_strdup (request->customer_name != NULL && *request->customer_name != '\0'
                                 ? request->customer_name : request->customer_address));
  g_hash_table_insert (values, "customer.address", g_strdup (request->customer_address));
  g_hash_table_insert (values, "queue.name",
                       g_strdup (queue->display_name != NULL ? queue->display_name : queue->name));
  g_hash_table_insert (values, "queue.address", g_strdup (queue->addresses[0]));
  g_hash_table_insert (values, "response.hours", hours_text (queue->first_response_s));
  if (queue->hours != NULL)
    {
      gint64 due = tm_hours_add_open_time (queue->hours, now, queue->first_response_s);
      gint64 back = tm_hours_next_open (queue->hours, now);
      g_hash_table_insert (values, "response.due",
                           due != 0 ? tm_hours_format_local (queue->hours, due) : g_strdup (""));
      g_hash_table_insert (values, "hours.timezone", g_strdup (tm_hours_timezone (queue->hours)));
      g_hash_table_insert (values, "hours.open", g_strdup (tm_hours_open_text (queue->hours)));
      g_hash_table_insert (values, "hours.next_open",
                           back != 0 ? tm_hours_format_local (queue->hours, back) : g_strdup (""));
    }
  else
    g_hash_table_insert (values, "response.due", format_utc (now + queue->first_response_s));
  return values;
}

static const char *
domain_of (const char *address)
{
  const char *at = strrchr (address, '@');
  return at != NULL ? at + 1 : "localhost";
}

gboolean
tm_autoreply_queue (const TmConfig *config, TmStore *store, const TmAutoreplyRequest *request,
                    const TmMessage *message, gint64 now, char **message_id, GError **error)
{
  g_return_val_if_fail (config != NULL && store != NULL && request != NULL && message != NULL
                        && message_id != NULL, FALSE);
  const TmQueue *queue = request->queue;
  const TmTemplate *template_ = tm_template_set_lookup (config->templates, request->language,
                                                        request->template_name);
  if (template_ == NULL)
    template_ = tm_template_set_lookup (config->templates, queue->language,
                                        request->template_name);
  /* Configuration loading made sure the queue's language has it. */
  g_return_val_if_fail (template_ != NULL, FALSE);

  g_autoptr (GHashTable) values = tm_autoreply_values (request, message, now);
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  tm_template_render (template_, values, &subject, &body);
  /* The tag is what makes the customer's reply thread: an admin's template
   * that left it out still gets it. */
  if (tm_subject_tag_find (subject, queue->tag_prefix) != request->ticket_id)
    {
      char *tagged = tm_subject_tag_apply (subject, queue->tag_prefix, request->ticket_id);
      g_free (subject);
      subject = tagged;
    }

  const char *from_address = queue->addresses[0];
  g_autofree char *new_id = tm_ack_mail_new_message_id (request->template_name,
                                                        request->ticket_id,
                                                        domain_of (from_address));
  TmAckMail mail = {
    .from_name = queue->display_name,
    .from_address = from_address,
    .to_name = request->customer_name,
    .to_address = request->customer_address,
    .subject = subject,
    .body = body,
    .language = request->language,
    .message_id = new_id,
    .in_reply_to = message->message_id,
    .references = (const char *const *) message->references,
    .date = now,
    .ticket_id = request->ticket_id,
    .queue_name = queue->name,
    .auto_submitted = "auto-replied",
  };
  gsize length = 0;
  g_autofree char *data = tm_ack_mail_compose (&mail, &length);

  TmOutboxMail outbox = {
    .ticket_id = request->ticket_id,
    .queue = queue->name,
    .kind = (char *) request->template_name,
    .sender = (char *) "",
    .recipient = (char *) request->customer_address,
    .message_id = new_id,
    .data = data,
    .length = length,
    .created_at = now,
    .queued_us = g_get_real_time (),
    .next_attempt_at = 0,
    .origin_queue_id = (char *) request->origin_queue_id,
  };
  if (!tm_store_outbox_add (store, &outbox, error))
    return FALSE;

  TmStoredMessage stored = {
    .ticket_id = request->ticket_id,
    .queue = queue->name,
    .message_key = new_id,
    .message_id = new_id,
    .direction = (char *) "autoreply",
    .sender = (char *) "",
    .from_address = (char *) from_address,
    .from_name = queue->display_name,
    .subject = subject,
    .received_at = now,
    .body_text = body,
    .size = length,
  };
  if (!tm_store_add_message (store, &stored, error))
    return FALSE;
  g_autofree char *detail = g_strdup_printf ("%s in %s to %s (outbox %" G_GINT64_FORMAT ")",
                                             request->template_name, request->language,
                                             request->customer_address, outbox.id);
  if (!tm_store_add_event (store, request->ticket_id, stored.id, "ack-queued", now, detail,
                           error))
    return FALSE;
  *message_id = g_steal_pointer (&new_id);
  return TRUE;
}
