/* log.h - syslog on the mail facility, one event per line.
 *
 * Every line about a mail starts with the MTA's queue id (or "NOQUEUE"), as
 * Postfix and OpenDKIM do, so that grepping the queue id in mail.log tells
 * the whole story of a mail. With tm_log_open(..., TRUE) lines also go to
 * stderr (the daemon's -f, and ticketctl).
 */
#ifndef TM_LOG_H
#define TM_LOG_H

#include <glib.h>
#include <syslog.h>

void tm_log_open (const char *ident, gboolean also_stderr);
/* Drops lines below PRIORITY (LOG_DEBUG keeps all); default LOG_INFO. */
void tm_log_set_level (int priority);

/* A line about one mail: "QUEUEID: message". queue_id may be NULL. */
void tm_log_mail (int priority, const char *queue_id, const char *format, ...)
  G_GNUC_PRINTF (3, 4);
/* A line about the program itself. */
void tm_log (int priority, const char *format, ...) G_GNUC_PRINTF (2, 3);

#endif
