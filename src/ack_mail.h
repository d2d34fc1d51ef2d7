/* ack_mail.h - compose the mail the desk sends: an acknowledgement (or any
 * other automatic reply) as RFC 5322 text, built with GMime.
 *
 * The result is ready for SMTP DATA: CRLF line ends, 7-bit clean (the UTF-8
 * body in quoted-printable or base64, whichever is shorter; non-ASCII in
 * Subject and display names as RFC 2047 encoded words in UTF-8), lines of at
 * most 998 octets. Headers written:
 *   From: "queue display name" <queue address>
 *   To: "customer name" <customer address>
 *   Subject, Date, Message-ID: <MESSAGE_ID>
 *   In-Reply-To / References: the customer's mail (References: its
 *     References, at most the last 20, then its Message-ID)
 *   Auto-Submitted: auto-replied          (RFC 3834)
 *   X-Auto-Response-Suppress: All         (asks Exchange not to answer us)
 *   X-Loop: queue address                 (how we recognise our own mail)
 *   X-Ticket-ID, X-Ticket-Queue
 *   MIME-Version, Content-Type: text/plain; charset=utf-8,
 *   Content-Transfer-Encoding, Content-Language
 *
 * Every field is data: CR, LF, NUL and other controls in any of them become
 * spaces, invalid UTF-8 becomes U+FFFD, and a message-id or address that is
 * not plausible (white space, <, >, controls) is left out rather than
 * written, so nothing from a customer's mail can add a header or a part.
 * The body's own line breaks are kept (LF or CRLF in, CRLF out).
 *
 * Thread-safe once tm_message_library_init() (GMime) has run.
 */
#ifndef TM_ACK_MAIL_H
#define TM_ACK_MAIL_H

#include <glib.h>

typedef struct {
  const char *from_name;          /* queue display name, may be NULL */
  const char *from_address;       /* queue address */
  const char *to_name;            /* customer's display name, may be NULL */
  const char *to_address;         /* customer's address */
  const char *subject;            /* UTF-8 */
  const char *body;               /* UTF-8 */
  const char *language;           /* Content-Language, may be NULL */
  const char *message_id;         /* ours, without <> */
  const char *in_reply_to;        /* customer's Message-ID without <>, may be NULL */
  const char *const *references;  /* customer's References without <>, oldest
                                     first, may be NULL */
  gint64 date;                    /* Unix seconds for Date: */
  gint64 ticket_id;
  const char *queue_name;
  const char *auto_submitted;     /* NULL: "auto-replied" */
} TmAckMail;

/* TRUE when ADDRESS is one that tm_ack_mail_compose() writes into From: or
 * To: (printable ASCII, one '@' not at either end, no white space or
 * <>()[]\\,;:", no '.' at the start or end of either side nor two in a
 * row, 3 to 254 octets); any other address is left out of the mail, so a
 * reply must not be queued to it (autoreply.c asks first). */
gboolean tm_ack_mail_address_is_plausible (const char *address);

/* The message text; *length set when LENGTH is not NULL. Never fails. */
char *tm_ack_mail_compose (const TmAckMail *mail, gsize *length) G_GNUC_WARN_UNUSED_RESULT;

/* TEXT as the value of an unstructured header that another module writes
 * (the Subject the milter rewrites, X-Ticket-Tags), by the rules above: one
 * line, controls and U+2028/U+2029 as spaces, trimmed; left as it is when
 * that is plain ASCII GMime would write exactly, else RFC 2047 encoded
 * words in UTF-8 separated by single spaces. Text that only looks like an
 * encoded word ("=?utf-8?q?a=0D=0A?=" typed by a customer) is encoded too,
 * so a reader shows it as typed and never decodes it into a line break.
 * "" when nothing is left. Never fails. */
char *tm_ack_mail_header_value (const char *text) G_GNUC_WARN_UNUSED_RESULT;

/* A new, globally unique Message-ID (without <>) for a mail about TICKET_ID
 * from DOMAIN: "ticket-1042.ack.<random hex>@domain". */
char *tm_ack_mail_new_message_id (const char *kind, gint64 ticket_id,
                                  const char *domain) G_GNUC_WARN_UNUSED_RESULT;

#endif
