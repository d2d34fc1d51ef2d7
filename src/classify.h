/* classify.h - what kind of mail this is, before any ticket is touched.
 *
 *   not-support  no recipient is a queue address: the mail passes untouched
 *   loop         our own output came back (X-Loop naming the queue address)
 *   automated    null sender, Auto-Submitted other than "no", Precedence
 *                bulk/list/junk/auto_reply, List-Id or List-Unsubscribe,
 *                X-Autoreply or X-Autorespond, mailer-daemon or postmaster
 *                senders, delivery reports: joins a ticket, never answered
 *   agent        From: a configured agent, and the envelope authenticated
 *                (SASL) or sent from a trusted network
 *   customer     everything else (a forged agent From: too)
 *
 * The queue is the first recipient, in envelope order, that is a queue
 * address; a mail addressed to two queues makes one ticket, in that queue.
 */
#ifndef TM_CLASSIFY_H
#define TM_CLASSIFY_H

#include "config.h"
#include "message.h"

typedef enum {
  TM_CLASS_CUSTOMER,
  TM_CLASS_AGENT,
  TM_CLASS_AUTOMATED,
  TM_CLASS_LOOP,
  TM_CLASS_NOT_SUPPORT,
} TmClass;

/* The envelope as the MTA gave it. All strings borrowed from the caller. */
typedef struct {
  const char *sender;        /* MAIL FROM, with or without <>; "" or "<>" is null */
  const char *const *recipients; /* RCPT TO addresses, NULL-terminated */
  const char *auth_user;     /* {auth_authen}, or NULL */
  const char *client_addr;   /* {client_addr}, or NULL */
  const char *mta_queue_id;  /* macro i, or NULL */
} TmEnvelope;

typedef struct {
  TmClass klass;
  const TmQueue *queue;      /* borrowed from the config; NULL for not-support */
  char *reason;              /* short machine-friendly reason: "auto-submitted",
                                "list", "null-sender", "authenticated-agent", ... */
} TmClassification;

/* "customer", "agent", ... Static string. */
const char *tm_class_name (TmClass klass);

/* Fills *out; free its reason with tm_classification_clear(). */
void tm_classify (const TmConfig *config, const TmMessage *message,
                  const TmEnvelope *envelope, TmClassification *out);
void tm_classification_clear (TmClassification *classification);

#endif
