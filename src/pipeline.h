/* pipeline.h - from a parsed mail to a decision, in one store transaction.
 *
 * parse (caller) -> classify -> queue -> thread -> language -> rules ->
 * decide -> acknowledgement (autoreply.h) -> route -> store.
 *
 * Rules (rules.h) are applied to the mail that opens a ticket: its tags,
 * priority, team and template language; follow-ups keep what the ticket has
 * and go to its current team. Routing: customer and automated mail on a
 * ticket with a team goes to the team's mailbox (recipients_add) instead of
 * the queue address (recipients_remove, unless the queue's keep_address),
 * with Reply-To: the queue address, so that an agent's Reply comes back
 * through the desk. A mail from one of the queue's form_senders is a contact
 * form: its customer is the Reply-To address.
 * The pipeline knows nothing of the milter protocol: the daemon and `ticketctl
 * simulate` run this very code. Its only inputs are the configuration, the
 * store's state, the message, the envelope and the time; with commit FALSE
 * the transaction is rolled back, so a dry run shows exactly what a real run
 * would do (down to the new ticket's number) and writes nothing.
 *
 * A mail already stored (same queue and Message-ID, or for a mail without
 * one the same content hash) is an MTA's retry: the decision names the
 * ticket it is on, with duplicate TRUE, and nothing is written again.
 *
 * Usage:
 *   TmDecision *d = tm_pipeline_run (config, store, msg, &envelope, now, TRUE, &error);
 *   if (d == NULL) -> tempfail (or accept, per on_error)
 *   ... apply d ...
 *   tm_decision_free (&d);
 */
#ifndef TM_PIPELINE_H
#define TM_PIPELINE_H

#include "classify.h"
#include "config.h"
#include "language.h"
#include "message.h"
#include "rules.h"
#include "store.h"
#include "threading.h"

typedef struct {
  char *name;
  char *value;               /* UTF-8; ASCII for every header set today */
} TmHeaderChange;

typedef struct {
  TmClassification classification;  /* class, queue, reason */

  /* The ticket; ticket_id 0 when no ticket is touched (not-support, loop). */
  gint64 ticket_id;
  gboolean ticket_new;
  gboolean duplicate;        /* this very mail was already on the ticket */
  char *status;
  char *priority;
  char *team;                /* may be NULL */
  char *language;
  const char *language_source; /* for a new ticket: tm_language_source_name(); else NULL */
  char *customer_address;    /* the ticket's customer */
  char *customer_name;       /* may be NULL */
  gboolean via_form;         /* the customer came from a contact form's Reply-To */
  TmRuleResult rules;        /* what the rules said (new tickets only; zeroed else) */
  char **tags;               /* NULL-terminated, never NULL */
  TmThreadedBy threaded_by;
  gint64 ignored_tag;        /* a subject tag that named no ticket of this queue */

  gboolean autoreply_send;
  char *autoreply_template;  /* may be NULL */
  char *autoreply_language;
  char *autoreply_reason;    /* short: "new-ticket", "after-hours", "follow-up",
                                "rate-limit", "spam", ... (autoreply.h) */
  char *autoreply_message_id; /* of the queued acknowledgement, or NULL */

  GPtrArray *recipients_add;    /* of char* */
  GPtrArray *recipients_remove; /* of char* */
  GPtrArray *headers;        /* of TmHeaderChange*: headers to add */
  char *subject;             /* rewritten subject (UTF-8), NULL when unchanged */
  char *subject_header;      /* the same as a header value (RFC 2047 where
                                needed), NULL when unchanged */
  char *reply_to;            /* Reply-To to set (replacing any), or NULL */
  gboolean truncated;
  gint64 message_row;        /* stored message row, 0 when none (or dry run) */
} TmDecision;

TmDecision *tm_pipeline_run (const TmConfig *config, TmStore *store,
                             const TmMessage *message, const TmEnvelope *envelope,
                             gint64 now, gboolean commit, GError **error)
  G_GNUC_WARN_UNUSED_RESULT;

/* What the pipeline decides for the mail that opens a ticket of QUEUE,
 * before any store work (ticketctl rules test shows the same):
 *   *detected    the mail's language by detection (language.h), with its source;
 *   RULES        tm_rules_apply on MESSAGE with RULES_LANGUAGE, or with the
 *                detected language when RULES_LANGUAGE is NULL;
 *   *language    the ticket's language: a rule's template_language when it
 *                has templates, else the detected one, with its source.
 * Clear RULES with tm_rule_result_clear(); free both strings. */
void tm_pipeline_new_ticket_language (const TmConfig *config, const TmQueue *queue,
                                      const TmMessage *message, const char *rules_language,
                                      TmRuleResult *rules,
                                      char **detected, TmLanguageSource *detected_source,
                                      char **language, TmLanguageSource *source);

/* Frees the decision and clears the caller's pointer; NULL is fine. */
void tm_decision_free (TmDecision **decision);

/* The one-line summary the daemon logs: "class=customer queue=support ticket=7 new=yes ...". */
char *tm_decision_summary (const TmDecision *decision) G_GNUC_WARN_UNUSED_RESULT;

#endif
