/* message.h - what ticket-milter needs to know about one mail, parsed with GMime.
 *
 * tm_message_parse() takes the raw bytes of a mail (headers, blank line,
 * body; CRLF or LF) and always returns a TmMessage: malformed MIME, unknown
 * charsets, raw 8-bit headers, missing headers and truncated input degrade
 * to what could be decoded, and each problem is described in `warnings`.
 * Every string in a TmMessage is valid UTF-8 without NUL bytes.
 *
 * Usage:
 *   TmParseOptions opts = { .fallback_charsets = config->fallback_charsets };
 *   TmMessage *msg = tm_message_parse (raw, raw_len, &opts);
 *   ... msg->subject, msg->body_text, tm_message_header (msg, "Precedence") ...
 *   tm_message_free (&msg);
 *
 * Ownership: the TmMessage owns everything in it. Strings returned by
 * tm_message_header() live as long as the message.
 * Thread safety: tm_message_parse() may run in several threads at once once
 * tm_message_library_init() has been called (once, at start).
 */
#ifndef TM_MESSAGE_H
#define TM_MESSAGE_H

#include <glib.h>

typedef struct {
  char *filename;           /* UTF-8, may be "" when the part has no name */
  char *content_type;       /* "application/pdf" */
  gsize size;               /* decoded bytes seen (less if the mail was truncated) */
} TmAttachment;

typedef struct {
  char *name;               /* header name as sent */
  char *value;              /* raw value, unfolded, leading white space removed;
                               bytes made valid UTF-8, encoded words NOT decoded */
} TmHeader;

typedef struct {
  const char *const *fallback_charsets; /* NULL-terminated; NULL: {"UTF-8", "windows-1256"} */
  gboolean truncated;       /* the caller kept only the first part of the body */
  gsize original_size;      /* bytes the MTA sent, when truncated; else 0 */
  gboolean hash_only_without_message_id; /* content_hash stays NULL when the mail has
                                            a Message-ID, the only key then needed;
                                            SHA-256 of a mail costs more than its SQL */
} TmParseOptions;

typedef struct {
  char *subject;            /* decoded (RFC 2047 and raw 8-bit); "" when missing */
  char *from_address;       /* first From: mailbox, lower-cased; NULL when missing */
  char *from_name;          /* its decoded display name, or NULL */
  char *reply_to_address;   /* lower-cased, or NULL */
  char **to;                /* addresses, lower-cased, NULL-terminated (maybe empty) */
  char **cc;                /* likewise */
  char *message_id;         /* without <>, NULL when missing or empty */
  char *in_reply_to;        /* first msg-id of In-Reply-To, without <>, or NULL */
  char **references;        /* msg-ids of References without <>, oldest first */
  char *date;               /* Date: as sent, or NULL */
  gint64 date_unix;         /* parsed Date:, or 0 when missing or unreadable */
  char *content_language;   /* Content-Language: as sent, or NULL */
  char *body_text;          /* best text: text/plain, else HTML made readable; "" if none */
  GPtrArray *attachments;   /* of TmAttachment*, in MIME order */
  GPtrArray *headers;       /* of TmHeader*, top-level headers in order */
  GPtrArray *warnings;      /* of char*: what was wrong with the input */
  char *content_hash;       /* hex SHA-256 (NULL under hash_only_without_message_id
                               when there is a Message-ID) over the headers less trace headers
                               (Received, Return-Path, X-Ticket-*, ...) and the body:
                               stable across an MTA's retries of the same mail */
  gsize size;               /* bytes of the raw mail (original_size when truncated) */
  gboolean truncated;       /* copied from the options */
} TmMessage;

void tm_message_library_init (void);

TmMessage *tm_message_parse (const char *raw, gsize length,
                             const TmParseOptions *options) G_GNUC_WARN_UNUSED_RESULT;

/* Frees the message and clears the caller's pointer; NULL is fine. */
void tm_message_free (TmMessage **message);

/* The raw value of the first header named NAME (any case), or NULL. */
const char *tm_message_header (const TmMessage *message, const char *name);

/* The first word of a header value, lower-cased, without comments,
 * parameters or a list's other entries: "Bulk (x)" -> "bulk",
 * "auto-replied; x" -> "auto-replied", "YES, score=9" -> "yes". New string. */
char *tm_header_first_word (const char *value) G_GNUC_WARN_UNUSED_RESULT;

/* The number of headers named NAME (any case). */
guint tm_message_header_count (const TmMessage *message, const char *name);

#endif
