/* smtp_client.h - hand one mail to an MTA over SMTP with libcurl.
 *
 * Used only by the outbox worker, never on the milter's mail path. The URL
 * is libcurl's: smtp://host:port (plain, or STARTTLS per `starttls`) or
 * smtps://host:port (TLS from the start). The envelope sender may be "" for
 * the null sender (MAIL FROM:<>), which is what every automatic reply uses.
 *
 * Outcome:
 *   TM_SMTP_SENT       the server accepted the mail (250 after DATA)
 *   TM_SMTP_TEMPORARY  try again later: no connection, timeout, a 4xx reply,
 *                      a TLS or authentication failure (an admin can fix
 *                      those without the mail being lost)
 *   TM_SMTP_PERMANENT  a 5xx reply to MAIL, RCPT or DATA: the mail will
 *                      never be accepted as it is
 * *detail is set to the server's last reply line ("250 2.0.0 Ok: queued as
 * 4Xyz") or a description of the failure ("connect to 127.0.0.1:2525:
 * Connection refused", "timed out after 30 s"), one line of printable ASCII.
 *
 * Each call makes its own connection (a desk sends few mails); the call
 * blocks for at most about connect_timeout + timeout seconds.
 * Thread-safe once tm_smtp_global_init() has run (at start, before threads).
 */
#ifndef TM_SMTP_CLIENT_H
#define TM_SMTP_CLIENT_H

#include <glib.h>

typedef enum {
  TM_SMTP_STARTTLS_NO,       /* never (a local MTA on loopback) */
  TM_SMTP_STARTTLS_TRY,      /* when offered */
  TM_SMTP_STARTTLS_REQUIRE,  /* fail (temporarily) without it */
} TmSmtpStarttls;

typedef enum {
  TM_SMTP_SENT,
  TM_SMTP_TEMPORARY,
  TM_SMTP_PERMANENT,
} TmSmtpResult;

/* A stop switch shared by the calls of several threads: once triggered,
 * every call in progress gives up (temporary) unless its message data is
 * already going out, and every later call gives up at once. The sockets of
 * calls still connecting or waiting for a reply are shut down, so that not
 * even a silent server's greeting holds the caller until its timeout.
 * Free it only after the calls that use it have returned. */
typedef struct TmSmtpCancel TmSmtpCancel;
TmSmtpCancel *tm_smtp_cancel_new (void);
void tm_smtp_cancel_trigger (TmSmtpCancel *cancel);
void tm_smtp_cancel_free (TmSmtpCancel *cancel);

typedef struct {
  const char *url;           /* smtp://127.0.0.1:25 */
  TmSmtpStarttls starttls;
  gboolean verify_peer;      /* check the TLS certificate and host name */
  const char *ca_file;       /* NULL: the system's */
  const char *username;      /* NULL: no AUTH */
  const char *password;
  const char *helo_name;     /* NULL: libcurl's default */
  guint connect_timeout_s;   /* 0: 10 */
  guint timeout_s;           /* whole transaction; 0: 60 */
  TmSmtpCancel *cancel;      /* NULL, or what tm_smtp_cancel_trigger() stops */
  /* Called once with the outcome (the same result and detail the call
   * returns) as soon as it is known, before QUIT: a caller that records
   * "sent" here does so without waiting for the goodbye. May be NULL. */
  void (*on_outcome) (TmSmtpResult result, const char *detail, gpointer data);
  gpointer on_outcome_data;
} TmSmtpOptions;


/* "sent", "temporary", "permanent". Static string. */
const char *tm_smtp_result_name (TmSmtpResult result);

void tm_smtp_global_init (void);

/* DATA is the whole message with CRLF line ends (dot-stuffing is done here). */
TmSmtpResult tm_smtp_send (const TmSmtpOptions *options, const char *envelope_sender,
                           const char *recipient, const char *data, gsize length,
                           char **detail);

#endif
