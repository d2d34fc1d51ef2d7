/* threading.c - find the ticket a mail belongs to.
 *
 * Three clues, strongest first: our subject tag, In-Reply-To, References
 * (newest first, which is the end of the header). Each is checked against the
 * store within the mail's queue only, so a tag or Message-ID that names
 * another queue's ticket never pulls a mail into it. References are capped at
 * max_references lookups: a hostile mail with thousands of them costs a
 * bounded number of indexed queries.
 */
#include "threading.h"

#include "subject_tag.h"

enum { max_references = 50 };

const char *
tm_threaded_by_name (TmThreadedBy how)
{
  switch (how)
    {
    case TM_THREADED_NONE: return "none";
    case TM_THREADED_SUBJECT_TAG: return "subject-tag";
    case TM_THREADED_IN_REPLY_TO: return "in-reply-to";
    case TM_THREADED_REFERENCES: return "references";
    }
  g_assert_not_reached ();
}

gboolean
tm_thread_find (TmStore *store, const TmQueue *queue, const TmMessage *message,
                gint64 *ticket_id, TmThreadedBy *how, gint64 *ignored_tag,
                GError **error)
{
  g_return_val_if_fail (store != NULL && queue != NULL && message != NULL, FALSE);
  *ticket_id = 0;
  *how = TM_THREADED_NONE;
  if (ignored_tag != NULL)
    *ignored_tag = 0;

  gint64 tagged = tm_subject_tag_find (message->subject, queue->tag_prefix);
  if (tagged > 0)
    {
      g_autoptr (TmTicket) ticket = NULL;
      if (!tm_store_get_ticket (store, tagged, &ticket, error))
        return FALSE;
      if (ticket != NULL && g_strcmp0 (ticket->queue, queue->name) == 0)
        {
          *ticket_id = tagged;
          *how = TM_THREADED_SUBJECT_TAG;
          return TRUE;
        }
      if (ignored_tag != NULL)
        *ignored_tag = tagged;
    }

  if (message->in_reply_to != NULL)
    {
      if (!tm_store_find_ticket_by_message_id (store, queue->name, message->in_reply_to,
                                               ticket_id, error))
        return FALSE;
      if (*ticket_id != 0)
        {
          *how = TM_THREADED_IN_REPLY_TO;
          return TRUE;
        }
    }

  if (message->references != NULL)
    {
      guint count = g_strv_length (message->references);
      guint looked = 0;
      for (guint i = count; i > 0 && looked < max_references; i--, looked++)
        {
          if (!tm_store_find_ticket_by_message_id (store, queue->name,
                                                   message->references[i - 1],
                                                   ticket_id, error))
            return FALSE;
          if (*ticket_id != 0)
            {
              *how = TM_THREADED_REFERENCES;
              return TRUE;
            }
        }
    }
  return TRUE;
}
