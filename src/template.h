/* template.h - customer-facing texts: templates/LANG/NAME.txt, loaded and
 * checked once at start, rendered per mail.
 *
 * A template file is UTF-8 text: a header block, one blank line, the body.
 * The header block holds exactly one "Subject: ..." line (no folding; header
 * names are matched without regard to case; any other header is an error).
 * Placeholders are written {{name}} (white space inside the braces is
 * allowed: {{ ticket.id }}) and may appear in the subject and the body:
 *
 *   ticket.id         1042
 *   ticket.tag        [Ticket#1042]
 *   ticket.subject    the customer's subject
 *   customer.name     the customer's display name, or their address
 *   customer.address  the customer's address
 *   queue.name        the queue's display name
 *   queue.address     the queue's address
 *   response.hours    the queue's first-response target in hours ("4")
 *   response.due      when a first answer is due, local time of the queue
 *   hours.timezone    the business hours' zone ("Asia/Riyadh"), "" without hours
 *   hours.open        the daily opening hours ("09:00-17:00"), "" without hours
 *   hours.next_open   when the team is back, local time, "" without hours
 *
 * An unknown placeholder, an unterminated "{{", a missing Subject, a missing
 * blank line, invalid UTF-8 or a NUL byte is a load error naming the file and
 * line. LANG is a directory name such as "en", "ar", "fa", "pt-br"; NAME a
 * file name of letters, digits and '-' (other files are ignored).
 *
 * Values are data: rendering turns every control character in a value
 * (C0, DEL, C1, U+2028, U+2029) into a space, invalid UTF-8 into U+FFFD, and
 * cuts a value at 200 characters (with "...") in the subject and at 1000 in
 * the body, so no value can add a header line or a MIME part, or make an
 * acknowledgement huge. Text written in the template itself is kept as it is.
 *
 * Ownership: the set owns its templates; pointers returned by lookups live
 * as long as the set. Rendering is thread-safe (the set is read-only).
 */
#ifndef TM_TEMPLATE_H
#define TM_TEMPLATE_H

#include <glib.h>

#define TM_TEMPLATE_ERROR (tm_template_error_quark ())
GQuark tm_template_error_quark (void);
typedef enum {
  TM_TEMPLATE_ERROR_READ,    /* directory or file unreadable */
  TM_TEMPLATE_ERROR_SYNTAX,  /* "FILE:LINE: what is wrong" */
} TmTemplateError;

typedef struct TmTemplateSet TmTemplateSet;  /* opaque */
typedef struct TmTemplate TmTemplate;        /* opaque */

/* The placeholder names above, NULL-terminated. Static. */
const char *const *tm_template_placeholders (void);

/* Loads every DIR/LANG/NAME.txt. A missing or unreadable DIR is an error; a
 * directory without templates gives an empty set. */
TmTemplateSet *tm_template_set_load (const char *dir, GError **error) G_GNUC_WARN_UNUSED_RESULT;
void tm_template_set_free (TmTemplateSet **set);

/* The template, or NULL when that language has no such template. */
const TmTemplate *tm_template_set_lookup (const TmTemplateSet *set, const char *language,
                                          const char *name);
/* Languages that have a template NAME, sorted, NULL-terminated. Lives as long
 * as the set. */
const char *const *tm_template_set_languages (const TmTemplateSet *set, const char *name);

/* The file it was read from (for messages). */
const char *tm_template_path (const TmTemplate *template_);

/* Renders subject and body. VALUES maps placeholder names to UTF-8 strings
 * (anything may be in them); a placeholder without a value renders as "".
 * Both results are new, valid UTF-8 strings; the subject has no control
 * characters. */
void tm_template_render (const TmTemplate *template_, GHashTable *values,
                         char **subject, char **body);

#endif
