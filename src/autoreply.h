/* autoreply.h - whether a mail may be answered automatically, and queueing
 * the answer (an acknowledgement) in the outbox.
 *
 * The pipeline asks in this order and stops at the first "no" (each answer
 * has a short reason, shown by `ticketctl simulate` and in the log line):
 *   the class: automated / loop / agent / not-support mail is never answered
 *     (classify.h holds the RFC 3834 checks: null sender, mailer-daemon,
 *     Auto-Submitted, Precedence, List-*, X-Autoreply, delivery reports);
 *   duplicate      an MTA's retry of a mail already answered
 *   follow-up      a mail on an existing ticket, unless the queue's
 *                  ack_followups says yes
 *   disabled       the queue's ack = no
 *   tm_autoreply_forbidden_by(): no-address, own-address, no-reply-sender,
 *     x-auto-response-suppress, spam
 *   rate-limit     the queue answered this address less than ack_rate_limit
 *                  ago (any ticket)
 * and otherwise sends "ack", or "after-hours" when the queue has business
 * hours and they are closed at the mail's time.
 */
#ifndef TM_AUTOREPLY_H
#define TM_AUTOREPLY_H

#include "config.h"
#include "message.h"
#include "store.h"

/* Why no automatic reply may go to RECIPIENT for MESSAGE (from a customer),
 * or NULL when one may. SENDER is the normalised envelope sender. VIA_FORM:
 * the mail came from a contact form (its sender is the form's robot address,
 * the customer is in Reply-To), so only RECIPIENT must not be a no-reply
 * address. Pure. Static string. */
const char *tm_autoreply_forbidden_by (const TmConfig *config, const TmMessage *message,
                                       const char *sender, const char *recipient,
                                       gboolean via_form);

/* What the acknowledgement is about. All borrowed. */
typedef struct {
  const TmQueue *queue;
  gint64 ticket_id;
  const char *customer_address;   /* the envelope recipient of the reply */
  const char *customer_name;      /* may be NULL */
  const char *template_name;      /* "ack", "after-hours" */
  const char *language;           /* has that template (or is the queue's) */
  const char *origin_queue_id;    /* MTA queue id of the mail, may be NULL */
} TmAutoreplyRequest;

/* Inside the pipeline's transaction: renders the template, composes the
 * mail, and writes it to the outbox, as an "autoreply" message on the
 * ticket (so that a reply to it threads) and as an "ack-queued" event.
 * *message_id receives the new mail's Message-ID. */
gboolean tm_autoreply_queue (const TmConfig *config, TmStore *store,
                             const TmAutoreplyRequest *request, const TmMessage *message,
                             gint64 now, char **message_id, GError **error);

/* The template values for REQUEST (placeholder name -> string); exposed for
 * tests. New table of new strings. */
GHashTable *tm_autoreply_values (const TmAutoreplyRequest *request, const TmMessage *message,
                                 gint64 now) G_GNUC_WARN_UNUSED_RESULT;

#endif
