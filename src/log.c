/* log.c - syslog on the mail facility, and stderr for foreground runs.
 *
 * openlog() with LOG_MAIL; with also_stderr each line is written to stderr
 * too, prefixed with the program name and severity, so that `ticket-milter -f`
 * and ticketctl show what syslog gets. Lines are formatted once into a
 * buffer on the stack of the caller's thread: safe from the session threads.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static const char *log_ident = "ticket-milter";
static gboolean log_to_stderr;
static int log_level = LOG_INFO;

/* Where syslog() writes. Without a listener there (a container, a test
 * machine with no syslog daemon), glibc tries to connect again on every
 * line: three system calls per line, on every mail. So the socket's
 * presence is looked at once a minute, and lines are not offered to syslog
 * while it is missing (stderr, under -f, still gets them). */
#define SYSLOG_SOCKET "/dev/log"
#define SYSLOG_RECHECK_US (60 * G_USEC_PER_SEC)
static gint syslog_present = 1;              /* atomic */
static gint64 syslog_checked_at;             /* atomic: monotonic microseconds */

static gboolean
syslog_is_listening (void)
{
  gint64 now = g_get_monotonic_time ();
  gint64 checked = (gint64) g_atomic_pointer_get (&syslog_checked_at);
  if (checked == 0 || now - checked > SYSLOG_RECHECK_US)
    {
      g_atomic_pointer_set (&syslog_checked_at, now);
      g_atomic_int_set (&syslog_present, g_file_test (SYSLOG_SOCKET, G_FILE_TEST_EXISTS));
    }
  return g_atomic_int_get (&syslog_present) != 0;
}

void
tm_log_open (const char *ident, gboolean also_stderr)
{
  log_ident = ident;
  log_to_stderr = also_stderr;
  openlog (ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
tm_log_set_level (int priority)
{
  log_level = priority;
}

static const char *
severity_name (int priority)
{
  switch (priority)
    {
    case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: return "fatal";
    case LOG_ERR: return "error";
    case LOG_WARNING: return "warning";
    case LOG_NOTICE: case LOG_INFO: return "info";
    default: return "debug";
    }
}

static void
log_line (int priority, const char *queue_id, const char *format, va_list args)
{
  if (priority > log_level)
    return;
  char text[2048];
  vsnprintf (text, sizeof text, format, args);
  if (!syslog_is_listening ())
    ;
  else if (queue_id != NULL)
    syslog (priority, "%s: %s", queue_id, text);
  else
    syslog (priority, "%s", text);
  if (log_to_stderr)
    {
      if (queue_id != NULL)
        fprintf (stderr, "%s: %s: %s: %s\n", log_ident, severity_name (priority), queue_id, text);
      else
        fprintf (stderr, "%s: %s: %s\n", log_ident, severity_name (priority), text);
    }
}

void
tm_log_mail (int priority, const char *queue_id, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  log_line (priority, queue_id != NULL && *queue_id != '\0' ? queue_id : "NOQUEUE", format, args);
  va_end (args);
}

void
tm_log (int priority, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  log_line (priority, NULL, format, args);
  va_end (args);
}
