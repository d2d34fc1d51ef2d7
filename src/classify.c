/* classify.c - customer, agent, automated, loop or not for us at all.
 *
 * Pure: it reads the configuration, the headers and the envelope, and no
 * store. The order of the checks matters: a mail for no queue is left alone
 * before anything else is looked at; our own output coming back is a loop
 * before it is "automated"; automated mail is never an agent's or a
 * customer's, so that nothing ever answers a robot (RFC 3834).
 */
#include "classify.h"

#include <string.h>

const char *
tm_class_name (TmClass klass)
{
  switch (klass)
    {
    case TM_CLASS_CUSTOMER: return "customer";
    case TM_CLASS_AGENT: return "agent";
    case TM_CLASS_AUTOMATED: return "automated";
    case TM_CLASS_LOOP: return "loop";
    case TM_CLASS_NOT_SUPPORT: return "not-support";
    }
  g_assert_not_reached ();
}

static const TmQueue *
queue_of_recipients (const TmConfig *config, const TmEnvelope *envelope)
{
  for (const char *const *rcpt = envelope->recipients; rcpt != NULL && *rcpt != NULL; rcpt++)
    {
      const TmQueue *queue = tm_config_queue_for_address (config, *rcpt);
      if (queue != NULL)
        return queue;
    }
  return NULL;
}

static gboolean
is_our_loop (const TmMessage *message, const TmQueue *queue)
{
  for (guint i = 0; i < message->headers->len; i++)
    {
      const TmHeader *header = g_ptr_array_index (message->headers, i);
      if (g_ascii_strcasecmp (header->name, "X-Loop") != 0)
        continue;
      g_autofree char *address = tm_address_normalize (header->value);
      if (g_strv_contains ((const char *const *) queue->addresses, address))
        return TRUE;
    }
  return FALSE;
}

static gboolean
local_part_is (const char *address, const char *const *names)
{
  const char *at = strrchr (address, '@');
  gsize length = at != NULL ? (gsize) (at - address) : strlen (address);
  for (; *names != NULL; names++)
    if (strlen (*names) == length && g_ascii_strncasecmp (address, *names, length) == 0)
      return TRUE;
  return FALSE;
}

/* Why a mail is automated, or NULL when it looks written by a person. */
static const char *
automated_reason (const TmMessage *message, const char *sender)
{
  static const char *const robot_senders[] = { "mailer-daemon", "postmaster", NULL };
  static const char *const bulk_precedence[] = { "bulk", "list", "junk", "auto_reply", NULL };

  if (*sender == '\0')
    return "null-sender";
  if (local_part_is (sender, robot_senders)
      || (message->from_address != NULL && local_part_is (message->from_address, robot_senders)))
    return "mailer-daemon";

  const char *auto_submitted = tm_message_header (message, "Auto-Submitted");
  if (auto_submitted != NULL)
    {
      g_autofree char *token = tm_header_first_word (auto_submitted);
      if (strcmp (token, "no") != 0)
        return "auto-submitted";
    }
  const char *precedence = tm_message_header (message, "Precedence");
  if (precedence != NULL)
    {
      g_autofree char *token = tm_header_first_word (precedence);
      if (g_strv_contains (bulk_precedence, token))
        return "precedence";
    }
  if (tm_message_header (message, "List-Id") != NULL
      || tm_message_header (message, "List-Unsubscribe") != NULL)
    return "list";
  /* Older autoresponders (vacation programs, some webmail) mark their
   * answers only this way. */
  if (tm_message_header (message, "X-Autoreply") != NULL
      || tm_message_header (message, "X-Autorespond") != NULL)
    return "x-autoreply";
  const char *content_type = tm_message_header (message, "Content-Type");
  if (content_type != NULL)
    {
      g_autofree char *token = tm_header_first_word (content_type);
      if (strcmp (token, "multipart/report") == 0)
        return "delivery-report";
    }
  return NULL;
}

void
tm_classify (const TmConfig *config, const TmMessage *message,
             const TmEnvelope *envelope, TmClassification *out)
{
  g_return_if_fail (config != NULL && message != NULL && envelope != NULL && out != NULL);
  memset (out, 0, sizeof *out);

  out->queue = queue_of_recipients (config, envelope);
  if (out->queue == NULL)
    {
      out->klass = TM_CLASS_NOT_SUPPORT;
      out->reason = g_strdup ("no-queue-recipient");
      return;
    }
  if (is_our_loop (message, out->queue))
    {
      out->klass = TM_CLASS_LOOP;
      out->reason = g_strdup ("x-loop");
      return;
    }

  g_autofree char *sender = tm_address_normalize (envelope->sender != NULL ? envelope->sender : "");
  const char *robot = automated_reason (message, sender);
  if (robot != NULL)
    {
      out->klass = TM_CLASS_AUTOMATED;
      out->reason = g_strdup (robot);
      return;
    }

  if (message->from_address != NULL && tm_config_is_agent (config, message->from_address))
    {
      if (envelope->auth_user != NULL && *envelope->auth_user != '\0')
        {
          out->klass = TM_CLASS_AGENT;
          out->reason = g_strdup ("authenticated-agent");
          return;
        }
      if (tm_config_is_trusted_client (config, envelope->client_addr))
        {
          out->klass = TM_CLASS_AGENT;
          out->reason = g_strdup ("trusted-network-agent");
          return;
        }
      /* An agent's From: without proof is what a forger sends. */
      out->klass = TM_CLASS_CUSTOMER;
      out->reason = g_strdup ("unauthenticated-agent-address");
      return;
    }
  out->klass = TM_CLASS_CUSTOMER;
  out->reason = g_strdup ("customer");
}

void
tm_classification_clear (TmClassification *classification)
{
  g_clear_pointer (&classification->reason, g_free);
}
