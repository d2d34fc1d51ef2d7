/* decision_json.h - JSON for ticketctl: decisions, tickets and messages.
 *
 * The shape of a decision is the contract of `ticketctl simulate` in
 * DESIGN.md; every key listed there is always present.
 */
#ifndef TM_DECISION_JSON_H
#define TM_DECISION_JSON_H

#include <json-glib/json-glib.h>
#include "pipeline.h"
#include "store.h"

JsonNode *tm_decision_to_json (const TmDecision *decision);
JsonNode *tm_ticket_to_json (const TmTicket *ticket);
/* messages: GPtrArray of TmStoredMessage*, events: of TmEvent*; either may
 * be NULL to leave it out. */
JsonNode *tm_ticket_with_messages_to_json (const TmTicket *ticket,
                                           const GPtrArray *messages,
                                           const GPtrArray *events);
/* An outbox mail without its data (id, status, attempts, recipient, ...). */
JsonNode *tm_outbox_mail_to_json (const TmOutboxMail *mail);
/* Pretty-printed with a trailing newline. Takes no ownership of NODE. */
char *tm_json_to_string (JsonNode *node, gboolean pretty) G_GNUC_WARN_UNUSED_RESULT;

#endif
