/* threading.h - which ticket a mail belongs to.
 *
 * In order: a subject tag of the queue naming an existing ticket of that
 * queue; In-Reply-To naming a Message-ID stored on a ticket of the queue
 * (mail of the customer's or mail the desk generated); References, newest
 * first. A tag naming a missing ticket, or one of another queue, is ignored
 * (the mail may still thread by its headers, else it opens a new ticket): a
 * mail never joins a stranger's ticket.
 */
#ifndef TM_THREADING_H
#define TM_THREADING_H

#include "config.h"
#include "message.h"
#include "store.h"

typedef enum {
  TM_THREADED_NONE,          /* no ticket found: a new one */
  TM_THREADED_SUBJECT_TAG,
  TM_THREADED_IN_REPLY_TO,
  TM_THREADED_REFERENCES,
} TmThreadedBy;

/* "none", "subject-tag", "in-reply-to", "references". Static string. */
const char *tm_threaded_by_name (TmThreadedBy how);

/* Must run inside a store transaction. *ticket_id is 0 for a new ticket.
 * *ignored_tag is set to a tag's id that was found but not used (missing
 * ticket or other queue), else 0; may be NULL. */
gboolean tm_thread_find (TmStore *store, const TmQueue *queue,
                         const TmMessage *message, gint64 *ticket_id,
                         TmThreadedBy *how, gint64 *ignored_tag, GError **error);

#endif
