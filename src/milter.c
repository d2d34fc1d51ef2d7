/* milter.c - ticket-milter: the milter callbacks and the daemon's main().
 *
 * The callbacks are deliberately thin. They collect what the MTA sends about
 * one mail (envelope, a few macros, the raw header and body bytes), hand it
 * at end of message to the pipeline (pipeline.h), and apply the decision as
 * modifications (milter_server.h speaks the protocol). Everything that decides anything lives in the pipeline, so
 * that `ticketctl simulate` runs exactly the same code.
 *
 * Command line (a contract; ticket-milter(8) is the manual):
 *   ticket-milter [-c FILE] [-f] [-p SOCKET] [-V] [-h]
 * Start-up, in order: arguments, configuration, log, daemonize (unless -f;
 * the parent waits for the child's verdict and exits with it), the socket
 * and store directories (made while still root, and given to the user),
 * the pid file, the privilege drop, GMime, the store, the socket (refusing
 * to replace one that another process still listens on), serving the MTA
 * (tm_milter_server_run) until SIGTERM, SIGINT or SIGHUP.
 * Exit statuses: 0 after a clean stop, 64 (EX_USAGE) bad command line,
 * 78 (EX_CONFIG) bad configuration or unknown user, 73 (EX_CANTCREAT) the
 * store, the socket, its directory or the pid file cannot be created,
 * 71 (EX_OSERR) fork or privilege drop failed, 70 (EX_SOFTWARE) serving
 * failed while running (accept failing for good).
 *
 * Configuration keys read here (ticket-milter.conf(5), defaults in config.h):
 *   [milter] socket on_error user socket_mode pid_file max_message_size
 *            max_header_size
 *   [store]  path busy_timeout synchronous group_commit
 *   [parser] fallback_charsets
 *
 * Contexts (CONVENTIONS.md section 6): a ConnectionContext (fields conn_*)
 * hangs off tm_milter_session_set_data from negotiation to close; a MessageContext
 * (fields msg_*) is made at MAIL FROM and released by message_context_free()
 * only, which envfrom (the previous mail), eom, abort and close all call.
 * Nothing the server hands us is kept beyond its callback: strings are copied.
 *
 * Limits: header bytes kept up to max_header_size, body bytes kept up to
 * max_message_size; beyond that the size is still counted and the ticket
 * notes the truncation. X-Ticket-* headers that arrive are always counted,
 * kept or not, because the MTA must be told to delete every one of them.
 *
 * Threads: the server calls the callbacks of different connections from
 * different threads. The configuration is read-only after start, the store
 * serialises its transactions (store.h), the parser is thread-safe after
 * tm_message_library_init(), and logging formats on the caller's stack.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_MALLOC_H
#include <malloc.h>
#endif


#include "classify.h"
#include "config.h"
#include "log.h"
#include "message.h"
#include "milter_server.h"
#include "outbox.h"
#include "pipeline.h"
#include "smtp_client.h"
#include "store.h"

#define PROGRAM_NAME "ticket-milter"
#define TICKET_HEADER_PREFIX "X-Ticket-"
/* Where a header value is folded when it is added or changed: RFC 5322's
 * recommended line length. */
#define FOLD_COLUMN 78

/* Set once in main() before serving; read-only afterwards. */
static TmConfig *milter_config;
static TmStore *milter_store;
static TmOutbox *milter_outbox;      /* NULL when the store is :memory: */
static gint64 milter_fixed_now;      /* -T: the clock decisions use; 0: the real one */

/* ---- contexts ------------------------------------------------------------ */

typedef struct {
  char *name;                /* as first spelled in the mail */
  guint count;               /* how many arrived, any spelling */
} SeenHeader;

typedef struct {
  char *msg_queue_id;        /* macro i, or NULL until known */
  char *msg_sender;          /* MAIL FROM argument as given */
  GPtrArray *msg_recipients; /* of char*: RCPT TO addresses, brackets stripped */
  char *msg_auth_user;       /* {auth_authen}, or NULL */
  char *msg_client_addr;     /* {client_addr}, or NULL */
  char *msg_daemon_name;     /* {daemon_name}, or NULL */
  GByteArray *msg_raw;       /* headers, blank line, body: what is kept */
  gsize msg_header_bytes;    /* header bytes kept */
  gsize msg_body_bytes;      /* body bytes kept */
  gsize msg_size;            /* every byte the MTA sent, kept or not */
  gboolean msg_truncated;    /* some header or body bytes were dropped */
  gboolean msg_headers_full; /* max_header_size reached: later headers dropped */
  gboolean msg_headers_ended;
  GHashTable *msg_ticket_headers; /* lower-cased name -> SeenHeader* (X-Ticket-*) */
  gboolean msg_subject_seen;
  guint msg_reply_to_count;  /* Reply-To headers that arrived */
} MessageContext;

typedef struct {
  guint32 conn_protocol;       /* TM_MILTER_* steps agreed in negotiation */
  MessageContext *conn_message;/* the mail in progress, or NULL */
} ConnectionContext;

static void
seen_header_free (gpointer data)
{
  SeenHeader *seen = data;
  g_free (seen->name);
  g_free (seen);
}

static MessageContext *
message_context_new (void)
{
  MessageContext *message = g_new0 (MessageContext, 1);
  message->msg_recipients = g_ptr_array_new_with_free_func (g_free);
  message->msg_raw = g_byte_array_new ();
  message->msg_ticket_headers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                       seen_header_free);
  return message;
}

/* The one cleanup of a message context; clears the caller's pointer. */
static void
message_context_free (MessageContext **message_ptr)
{
  MessageContext *message = *message_ptr;
  if (message == NULL)
    return;
  g_free (message->msg_queue_id);
  g_free (message->msg_sender);
  g_ptr_array_unref (message->msg_recipients);
  g_free (message->msg_auth_user);
  g_free (message->msg_client_addr);
  g_free (message->msg_daemon_name);
  g_byte_array_unref (message->msg_raw);
  g_hash_table_unref (message->msg_ticket_headers);
  g_free (message);
  *message_ptr = NULL;
}

static ConnectionContext *
connection_context (TmMilterSession *session)
{
  return tm_milter_session_get_data (session);
}

/* The connection context, made here when negotiation did not run. */
static ConnectionContext *
connection_context_ensure (TmMilterSession *session)
{
  ConnectionContext *conn = tm_milter_session_get_data (session);
  if (conn == NULL)
    {
      conn = g_new0 (ConnectionContext, 1);
      tm_milter_session_set_data (session, conn);
    }
  return conn;
}

static char *
symbol_copy (TmMilterSession *session, const char *name)
{
  const char *value = tm_milter_session_macro (session, name);
  return value != NULL && *value != '\0' ? g_strdup (value) : NULL;
}

/* "<a@b>" -> "a@b"; surrounding white space goes too. Case is kept. */
static char *
strip_brackets (const char *address)
{
  g_autofree char *trimmed = g_strstrip (g_strdup (address));
  gsize length = strlen (trimmed);
  if (length >= 2 && trimmed[0] == '<' && trimmed[length - 1] == '>')
    return g_strndup (trimmed + 1, length - 2);
  return g_steal_pointer (&trimmed);
}

/* ---- collecting the mail ------------------------------------------------- */

static void
milter_negotiate (TmMilterSession *session, guint32 offered_actions, guint32 offered_steps,
                  guint32 *actions, guint32 *steps)
{
  const guint32 wanted_actions = TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_CHANGE_HEADERS
                                 | TM_MILTER_ACTION_ADD_RECIPIENTS
                                 | TM_MILTER_ACTION_DELETE_RECIPIENTS
                                 | TM_MILTER_ACTION_SET_MACRO_LIST;
  const guint32 needed_actions = TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_CHANGE_HEADERS;
  /* Every step before end of message goes without a reply: the MTA sends
   * them back to back, and the session reads them in one go. */
  const guint32 no_reply = TM_MILTER_NO_REPLY_CONNECT | TM_MILTER_NO_REPLY_HELO
                           | TM_MILTER_NO_REPLY_MAIL | TM_MILTER_NO_REPLY_RCPT
                           | TM_MILTER_NO_REPLY_DATA | TM_MILTER_NO_REPLY_UNKNOWN
                           | TM_MILTER_NO_REPLY_EOH | TM_MILTER_NO_REPLY_HEADER
                           | TM_MILTER_NO_REPLY_BODY;

  ConnectionContext *conn = connection_context_ensure (session);
  /* A second negotiation on one connection starts afresh. */
  message_context_free (&conn->conn_message);

  *actions = offered_actions & wanted_actions;
  if ((*actions & needed_actions) != needed_actions)
    tm_log (LOG_WARNING, "the MTA does not allow adding and changing headers "
            "(offered actions 0x%" G_GINT32_MODIFIER "x): tickets will be stored but mails "
            "not tagged", offered_actions);

  guint32 wanted_steps = TM_MILTER_SKIP_HELO | TM_MILTER_SKIP_UNKNOWN | TM_MILTER_SKIP_DATA
                         | TM_MILTER_HEADER_LEADING_SPACE | no_reply;
  /* Connect-time macros ({client_addr}) are only sent with the connect step,
   * unless the MTA lets us ask for them at MAIL FROM instead. */
  if ((*actions & TM_MILTER_ACTION_SET_MACRO_LIST) != 0)
    wanted_steps |= TM_MILTER_SKIP_CONNECT;
  *steps = offered_steps & wanted_steps;
  conn->conn_protocol = *steps;

  if ((*actions & TM_MILTER_ACTION_SET_MACRO_LIST) != 0)
    {
      tm_milter_session_request_macros (session, TM_MILTER_STAGE_MAIL,
                                        "i {auth_authen} {client_addr} {daemon_name}");
      tm_milter_session_request_macros (session, TM_MILTER_STAGE_EOM, "i");
    }
}

static void
milter_mail (TmMilterSession *session, const char *const *arguments, int count)
{
  (void) count;
  ConnectionContext *conn = connection_context_ensure (session);
  message_context_free (&conn->conn_message);
  MessageContext *message = message_context_new ();
  conn->conn_message = message;

  message->msg_sender = g_strdup (arguments[0]);
  message->msg_queue_id = symbol_copy (session, "i");
  message->msg_auth_user = symbol_copy (session, "{auth_authen}");
  message->msg_client_addr = symbol_copy (session, "{client_addr}");
  message->msg_daemon_name = symbol_copy (session, "{daemon_name}");
}

static void
milter_recipient (TmMilterSession *session, const char *const *arguments, int count)
{
  (void) count;
  ConnectionContext *conn = connection_context (session);
  if (conn != NULL && conn->conn_message != NULL)
    g_ptr_array_add (conn->conn_message->msg_recipients, strip_brackets (arguments[0]));
}

/* Appends TEXT with every bare LF turned into CRLF, so that folded header
 * values reach the parser with the line ends the rest of the mail has. */
static void
append_crlf_text (GByteArray *raw, const char *text)
{
  for (const char *c = text; *c != '\0'; c++)
    {
      if (*c == '\n' && (c == text || c[-1] != '\r'))
        g_byte_array_append (raw, (const guint8 *) "\r", 1);
      g_byte_array_append (raw, (const guint8 *) c, 1);
    }
}

static void
note_header (MessageContext *message, const char *name)
{
  if (g_ascii_strcasecmp (name, "Subject") == 0)
    message->msg_subject_seen = TRUE;
  if (g_ascii_strcasecmp (name, "Reply-To") == 0)
    message->msg_reply_to_count++;
  if (g_ascii_strncasecmp (name, TICKET_HEADER_PREFIX, strlen (TICKET_HEADER_PREFIX)) != 0)
    return;
  char *key = g_ascii_strdown (name, -1);
  SeenHeader *seen = g_hash_table_lookup (message->msg_ticket_headers, key);
  if (seen == NULL)
    {
      seen = g_new0 (SeenHeader, 1);
      seen->name = g_strdup (name);
      g_hash_table_insert (message->msg_ticket_headers, key, seen);
    }
  else
    g_free (key);
  seen->count++;
}

static void
milter_header (TmMilterSession *session, const char *name, const char *value)
{
  ConnectionContext *conn = connection_context (session);
  if (conn == NULL || conn->conn_message == NULL)
    return;
  MessageContext *message = conn->conn_message;

  note_header (message, name);

  /* With HDR_LEADSPC the value is exactly what followed the colon; without
   * it the MTA removed the one space that conventionally follows it. */
  gboolean leading_space = (conn->conn_protocol & TM_MILTER_HEADER_LEADING_SPACE) != 0;
  gsize line_bytes = strlen (name) + 1 + (leading_space ? 0 : 1) + strlen (value) + 2;
  message->msg_size += line_bytes;
  /* The headers kept are the first ones, not whichever later ones fit. */
  if (message->msg_headers_full
      || message->msg_header_bytes + line_bytes > milter_config->max_header_size)
    {
      message->msg_headers_full = TRUE;
      message->msg_truncated = TRUE;
      return;
    }
  guint before = message->msg_raw->len;
  g_byte_array_append (message->msg_raw, (const guint8 *) name, strlen (name));
  g_byte_array_append (message->msg_raw, (const guint8 *) (leading_space ? ":" : ": "),
                       leading_space ? 1 : 2);
  append_crlf_text (message->msg_raw, value);
  g_byte_array_append (message->msg_raw, (const guint8 *) "\r\n", 2);
  message->msg_header_bytes += message->msg_raw->len - before;
}

static void
end_headers (MessageContext *message)
{
  if (message->msg_headers_ended)
    return;
  g_byte_array_append (message->msg_raw, (const guint8 *) "\r\n", 2);
  message->msg_size += 2;
  message->msg_headers_ended = TRUE;
}

static void
milter_end_of_headers (TmMilterSession *session)
{
  ConnectionContext *conn = connection_context (session);
  if (conn != NULL && conn->conn_message != NULL)
    end_headers (conn->conn_message);
}

static void
milter_body (TmMilterSession *session, const guint8 *chunk, gsize length)
{
  ConnectionContext *conn = connection_context (session);
  if (conn == NULL || conn->conn_message == NULL)
    return;
  MessageContext *message = conn->conn_message;
  end_headers (message);

  message->msg_size += length;
  gsize room = milter_config->max_message_size > message->msg_body_bytes
               ? milter_config->max_message_size - message->msg_body_bytes : 0;
  gsize kept = MIN (room, length);
  if (kept < length)
    message->msg_truncated = TRUE;
  if (kept > 0)
    {
      g_byte_array_append (message->msg_raw, chunk, kept);
      message->msg_body_bytes += kept;
    }
}

/* ---- applying the decision ----------------------------------------------- */

/* A header value ready for the MTA: CR and LF from the value become spaces
 * (a value can never open a header line of its own), long values are folded
 * with LF before white space, and with HDR_LEADSPC the conventional space
 * after the colon is ours to send. */
static char *
header_value_for_mta (const ConnectionContext *conn, const char *name, const char *value)
{
  g_autofree char *clean = g_strdup (value);
  for (char *c = clean; *c != '\0'; c++)
    if (*c == '\r' || *c == '\n')
      *c = ' ';

  GString *out = g_string_new (NULL);
  if ((conn->conn_protocol & TM_MILTER_HEADER_LEADING_SPACE) != 0)
    g_string_append_c (out, ' ');
  gsize column = strlen (name) + 2;   /* "Name: " */
  const char *p = clean;
  while (*p != '\0')
    {
      /* One token: a run of white space and the word after it. */
      const char *start = p;
      while (*p == ' ' || *p == '\t')
        p++;
      while (*p != '\0' && *p != ' ' && *p != '\t')
        p++;
      gsize length = (gsize) (p - start);
      gboolean starts_with_space = *start == ' ' || *start == '\t';
      if (starts_with_space && column + length > FOLD_COLUMN && out->len > 1)
        {
          g_string_append_c (out, '\n');
          column = 0;
        }
      g_string_append_len (out, start, (gssize) length);
      column += length;
    }
  return g_string_free (out, FALSE);
}

/* The recipient as the MTA knows it: the envelope's own spelling of an
 * address the decision names in lower case. */
static const char *
envelope_spelling (const MessageContext *message, const char *address)
{
  g_autofree char *wanted = tm_address_normalize (address);
  for (guint i = 0; i < message->msg_recipients->len; i++)
    {
      const char *given = g_ptr_array_index (message->msg_recipients, i);
      g_autofree char *normal = tm_address_normalize (given);
      if (strcmp (normal, wanted) == 0)
        return given;
    }
  return address;
}

/* Deletes COUNT headers NAME, the highest index first so that the remaining
 * indexes stay valid. */
static gboolean
delete_headers (TmMilterSession *session, const char *name, guint count)
{
  for (guint index = count; index >= 1; index--)
    if (!tm_milter_session_change_header (session, name, index, NULL))
      return FALSE;
  return TRUE;
}

/* Tells the MTA what the decision says. FALSE (with *failed_call set) when
 * a modification was refused (the MTA did not agree to that action); what
 * was already requested is then moot, since the caller answers per on_error. */
static gboolean
apply_decision (TmMilterSession *session, const ConnectionContext *conn, const MessageContext *message,
                const TmDecision *decision, const char **failed_call)
{
  /* Delete every X-Ticket-* header that arrived: anyone can forge them. */
  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init (&iter, message->msg_ticket_headers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      const SeenHeader *seen = value;
      if (!delete_headers (session, seen->name, seen->count))
        {
          *failed_call = "deleting an X-Ticket header";
          return FALSE;
        }
    }

  for (guint i = 0; i < decision->headers->len; i++)
    {
      const TmHeaderChange *change = g_ptr_array_index (decision->headers, i);
      g_autofree char *mta_value = header_value_for_mta (conn, change->name, change->value);
      if (!tm_milter_session_add_header (session, change->name, mta_value))
        {
          *failed_call = "adding a header";
          return FALSE;
        }
    }

  if (decision->subject_header != NULL)
    {
      g_autofree char *mta_value = header_value_for_mta (conn, "Subject", decision->subject_header);
      gboolean done = message->msg_subject_seen
                      ? tm_milter_session_change_header (session, "Subject", 1, mta_value)
                      : tm_milter_session_add_header (session, "Subject", mta_value);
      if (!done)
        {
          *failed_call = message->msg_subject_seen ? "changing the Subject"
                                                   : "adding a Subject";
          return FALSE;
        }
    }

  if (decision->reply_to != NULL)
    {
      /* Replaces whatever Reply-To came (the customer's is on the ticket). */
      if (!delete_headers (session, "Reply-To", message->msg_reply_to_count))
        {
          *failed_call = "deleting the Reply-To";
          return FALSE;
        }
      g_autofree char *mta_value = header_value_for_mta (conn, "Reply-To", decision->reply_to);
      if (!tm_milter_session_add_header (session, "Reply-To", mta_value))
        {
          *failed_call = "adding the Reply-To";
          return FALSE;
        }
    }

  for (guint i = 0; i < decision->recipients_add->len; i++)
    {
      g_autofree char *bracketed = g_strdup_printf (
        "<%s>", (const char *) g_ptr_array_index (decision->recipients_add, i));
      if (!tm_milter_session_add_recipient (session, bracketed))
        {
          *failed_call = "adding a recipient";
          return FALSE;
        }
    }
  for (guint i = 0; i < decision->recipients_remove->len; i++)
    {
      const char *address = g_ptr_array_index (decision->recipients_remove, i);
      g_autofree char *bracketed = g_strdup_printf ("<%s>", envelope_spelling (message, address));
      if (!tm_milter_session_delete_recipient (session, bracketed))
        {
          *failed_call = "deleting a recipient";
          return FALSE;
        }
    }
  return TRUE;
}

/* The answer for a mail that could not be handled, per [milter] on_error. */
static TmMilterVerdict
answer_on_error (TmMilterSession *session)
{
  if (milter_config->on_error == TM_ON_ERROR_ACCEPT)
    return TM_MILTER_ACCEPT;
  tm_milter_session_set_reply (session, "451", "4.3.0",
                               PROGRAM_NAME ": cannot store the ticket, try again later");
  return TM_MILTER_TEMPFAIL;
}

/* What answer_on_error() tells the MTA, for the log line that goes with it. */
static const char *
on_error_outcome (void)
{
  return milter_config->on_error == TM_ON_ERROR_ACCEPT
         ? "accepted without a ticket (on_error = accept)"
         : "answered 451 4.3.0, the MTA keeps the mail (on_error = tempfail)";
}

static TmMilterVerdict
milter_end_of_message (TmMilterSession *session)
{
  gint64 started = g_get_monotonic_time ();
  ConnectionContext *conn = connection_context (session);
  if (conn == NULL || conn->conn_message == NULL)
    {
      tm_log (LOG_WARNING, "end of message without MAIL FROM: passed untouched");
      return TM_MILTER_CONTINUE;
    }
  MessageContext *message = conn->conn_message;
  if (message->msg_queue_id == NULL)
    message->msg_queue_id = symbol_copy (session, "i");
  const char *queue_id = message->msg_queue_id;
  end_headers (message);

  TmParseOptions options = {
    .fallback_charsets = (const char *const *) milter_config->fallback_charsets,
    .truncated = message->msg_truncated,
    .original_size = message->msg_truncated ? message->msg_size : 0,
    .hash_only_without_message_id = TRUE,
  };
  TmMessage *parsed = tm_message_parse ((const char *) message->msg_raw->data,
                                        message->msg_raw->len, &options);
  for (guint i = 0; i < parsed->warnings->len; i++)
    tm_log_mail (LOG_WARNING, queue_id, "input: %s",
                 (const char *) g_ptr_array_index (parsed->warnings, i));

  g_autofree const char **recipients = g_new0 (const char *, message->msg_recipients->len + 1);
  for (guint i = 0; i < message->msg_recipients->len; i++)
    recipients[i] = g_ptr_array_index (message->msg_recipients, i);
  TmEnvelope envelope = {
    .sender = message->msg_sender,
    .recipients = recipients,
    .auth_user = message->msg_auth_user,
    .client_addr = message->msg_client_addr,
    .mta_queue_id = queue_id,
  };

  g_autoptr (GError) error = NULL;
  gint64 now = milter_fixed_now != 0 ? milter_fixed_now : (gint64) time (NULL);
  TmDecision *decision = tm_pipeline_run (milter_config, milter_store, parsed, &envelope,
                                          now, TRUE, &error);
  tm_message_free (&parsed);
  TmMilterVerdict answer = TM_MILTER_CONTINUE;
  if (decision == NULL)
    {
      tm_log_mail (LOG_ERR, queue_id, "error: %s; %s", error != NULL ? error->message : "unknown error",
                   on_error_outcome ());
      answer = answer_on_error (session);
      message_context_free (&conn->conn_message);
      return answer;
    }

  /* Committed: the worker may deliver the acknowledgement at once, while
   * the MTA is still busy with the mail. */
  if (decision->autoreply_message_id != NULL)
    tm_outbox_wake (milter_outbox);

  if (decision->classification.klass != TM_CLASS_NOT_SUPPORT)
    {
      const char *failed_call = NULL;
      if (!apply_decision (session, conn, message, decision, &failed_call))
        {
          /* The ticket is committed; a retried mail is recognised as a
           * duplicate and gets its headers then. */
          tm_log_mail (LOG_ERR, queue_id, "error: %s failed; ticket %" G_GINT64_FORMAT
                       " is stored; %s",
                       failed_call, decision->ticket_id, on_error_outcome ());
          answer = answer_on_error (session);
        }
    }

  g_autofree char *summary = tm_decision_summary (decision);
  double elapsed_ms = (double) (g_get_monotonic_time () - started) / 1000.0;
  if (message->msg_truncated)
    tm_log_mail (LOG_INFO, queue_id, "%s eom_ms=%.3f truncated=yes size=%" G_GSIZE_FORMAT,
                 summary, elapsed_ms, message->msg_size);
  else
    tm_log_mail (LOG_INFO, queue_id, "%s eom_ms=%.3f", summary, elapsed_ms);

  tm_decision_free (&decision);
  message_context_free (&conn->conn_message);
  return answer;
}

static void
milter_abort (TmMilterSession *session)
{
  ConnectionContext *conn = connection_context (session);
  if (conn != NULL)
    message_context_free (&conn->conn_message);
}

static void
milter_close (TmMilterSession *session)
{
  ConnectionContext *conn = connection_context (session);
  if (conn == NULL)
    return;
  message_context_free (&conn->conn_message);
  g_free (conn);
  tm_milter_session_set_data (session, NULL);
}

static const TmMilterCallbacks milter_callbacks = {
  .negotiate = milter_negotiate,
  .mail = milter_mail,
  .recipient = milter_recipient,
  .header = milter_header,
  .end_of_headers = milter_end_of_headers,
  .body = milter_body,
  .end_of_message = milter_end_of_message,
  .abort = milter_abort,
  .close = milter_close,
};

/* ---- start-up ------------------------------------------------------------ */

/* In daemon mode the parent waits on this pipe for the child's verdict on
 * start-up: one status byte, then the error message if any. -1 otherwise. */
static int startup_report_fd = -1;
static gboolean log_is_open;
static const char *pid_file_written; /* removed again when start-up fails */

/* Start-up cannot go on: say why (stderr, or through the pipe to the parent
 * that still has the admin's terminal) and exit with STATUS. */
static void G_GNUC_NORETURN G_GNUC_PRINTF (2, 3)
startup_fail (int status, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *text = g_strdup_vprintf (format, args);
  va_end (args);
  /* syslog() directly: tm_log() would repeat the line on stderr under -f. */
  if (log_is_open)
    syslog (LOG_ERR, "%s", text);
  if (pid_file_written != NULL)
    unlink (pid_file_written);
  if (startup_report_fd >= 0)
    {
      g_autofree char *report = g_strdup_printf ("%c%s", (char) status, text);
      if (write (startup_report_fd, report, 1 + strlen (text)) < 0)
        {
          /* The parent is gone; syslog has the message. */
        }
      close (startup_report_fd);
    }
  else
    fprintf (stderr, PROGRAM_NAME ": %s\n", text);
  exit (status);
}

static void
startup_succeeded (void)
{
  if (startup_report_fd < 0)
    return;
  char ok = 0;
  if (write (startup_report_fd, &ok, 1) < 0)
    {
      /* The parent is gone: nobody is waiting for the verdict. */
    }
  close (startup_report_fd);
  startup_report_fd = -1;
}

/* Forks; the parent waits for the child's start-up verdict and exits with
 * it, so that an init script still sees a store that cannot be opened. The
 * child leaves the terminal behind. Must run before any thread exists. */
static void
daemonize (void)
{
  int report[2];
  if (pipe (report) != 0)
    startup_fail (EX_OSERR, "pipe: %s", g_strerror (errno));
  pid_t child = fork ();
  if (child < 0)
    startup_fail (EX_OSERR, "fork: %s", g_strerror (errno));
  if (child > 0)
    {
      close (report[1]);
      GString *verdict = g_string_new (NULL);
      char buffer[512];
      ssize_t got;
      while ((got = read (report[0], buffer, sizeof buffer)) != 0)
        {
          if (got < 0 && errno == EINTR)
            continue;
          if (got < 0)
            break;
          g_string_append_len (verdict, buffer, got);
        }
      if (verdict->len == 0)
        {
          fprintf (stderr, PROGRAM_NAME ": the daemon exited during start-up (see syslog)\n");
          _exit (EX_SOFTWARE);
        }
      int status = (unsigned char) verdict->str[0];
      if (status != 0)
        fprintf (stderr, PROGRAM_NAME ": %s\n", verdict->str + 1);
      _exit (status);
    }

  close (report[0]);
  startup_report_fd = report[1];
  if (setsid () < 0)
    startup_fail (EX_OSERR, "setsid: %s", g_strerror (errno));
  if (chdir ("/") != 0)
    startup_fail (EX_OSERR, "chdir /: %s", g_strerror (errno));
  int null_fd = open ("/dev/null", O_RDWR);
  if (null_fd < 0)
    startup_fail (EX_OSERR, "/dev/null: %s", g_strerror (errno));
  dup2 (null_fd, STDIN_FILENO);
  dup2 (null_fd, STDOUT_FILENO);
  dup2 (null_fd, STDERR_FILENO);
  if (null_fd > STDERR_FILENO)
    close (null_fd);
}

/* The file of a unix socket in libmilter's notation ("unix:/p", "local:/p" or
 * a bare "/p"), or NULL for inet sockets. */
static const char *
unix_socket_path (const char *socket_spec)
{
  if (g_str_has_prefix (socket_spec, "unix:"))
    return socket_spec + strlen ("unix:");
  if (g_str_has_prefix (socket_spec, "local:"))
    return socket_spec + strlen ("local:");
  if (socket_spec[0] == '/')
    return socket_spec;
  return NULL;
}

/* TRUE when something accepts connections on the unix socket PATH: another
 * ticket-milter that tm_milter_server_new() would otherwise silently replace. */
static gboolean
unix_socket_is_live (const char *path)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  if (strlen (path) >= sizeof address.sun_path)
    return FALSE;
  strcpy (address.sun_path, path);
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return FALSE;
  gboolean live = connect (fd, (struct sockaddr *) &address, sizeof address) == 0;
  close (fd);
  return live;
}

/* Creates the directory of PATH (a socket or the database) when it is
 * missing, while still root, and gives it to the user the daemon is about to
 * become, who must create files in it. An existing directory is left as the
 * admin made it: it may be shared, like /run. */
static void
prepare_directory_of (const char *path, guint mode, const char *what,
                      const struct passwd *user)
{
  g_autofree char *directory = g_path_get_dirname (path);
  if (g_file_test (directory, G_FILE_TEST_IS_DIR))
    return;
  /* Missing parents are made traversable (0755), or the user could not
   * reach a directory that is its own. */
  g_autofree char *parent = g_path_get_dirname (directory);
  if (g_mkdir_with_parents (parent, 0755) != 0 || (mkdir (directory, (mode_t) mode) != 0
                                                     && errno != EEXIST))
    startup_fail (EX_CANTCREAT, "cannot create the %s directory %s: %s", what, directory,
                  g_strerror (errno));
  if (user != NULL && chown (directory, user->pw_uid, user->pw_gid) != 0)
    startup_fail (EX_CANTCREAT, "cannot give the %s directory %s to %s: %s", what, directory,
                  user->pw_name, g_strerror (errno));
}

static void
write_pid_file (const char *path)
{
  g_autofree char *text = g_strdup_printf ("%ld\n", (long) getpid ());
  g_autoptr (GError) error = NULL;
  if (!g_file_set_contents (path, text, -1, &error))
    startup_fail (EX_CANTCREAT, "cannot write the pid file: %s", error->message);
  pid_file_written = path;
}

/* Becomes USER for good: supplementary groups, group, then user, and checks
 * that root cannot be regained. */
static void
drop_privileges (const struct passwd *user)
{
  if (initgroups (user->pw_name, user->pw_gid) != 0)
    startup_fail (EX_OSERR, "initgroups %s: %s", user->pw_name, g_strerror (errno));
  if (setgid (user->pw_gid) != 0)
    startup_fail (EX_OSERR, "setgid %ld: %s", (long) user->pw_gid, g_strerror (errno));
  if (setuid (user->pw_uid) != 0)
    startup_fail (EX_OSERR, "setuid %ld: %s", (long) user->pw_uid, g_strerror (errno));
  if (user->pw_uid != 0 && setuid (0) == 0)
    startup_fail (EX_OSERR, "could regain root after becoming %s: refusing to run",
                  user->pw_name);
}

static TmStore *
open_store (const TmConfig *config)
{
  TmStoreOptions options = {
    .busy_timeout_ms = config->busy_timeout_ms,
    .synchronous_full = config->synchronous_full,
    .group_commit_max = config->group_commit_max,
    .create = TRUE,
  };
  g_autoptr (GError) error = NULL;
  TmStore *store = tm_store_open (config->store_path, &options, &error);
  if (store == NULL)
    startup_fail (EX_CANTCREAT, "%s", error->message);
  return store;
}

static void
print_usage (FILE *stream)
{
  fprintf (stream, "usage: " PROGRAM_NAME " [-c FILE] [-f] [-p SOCKET] [-T TIME] [-V] [-h]\n");
}

static void
print_help (void)
{
  print_usage (stdout);
  printf ("\n"
          "  -c FILE    configuration file (default %s)\n"
          "  -f         stay in the foreground and log to stderr as well as syslog\n"
          "  -p SOCKET  listen on SOCKET (unix:/path or inet:port@host), overriding\n"
          "             [milter] socket\n"
          "  -T TIME    decide as if it were TIME (ISO 8601, e.g. 2026-11-26T20:00:00+03:00):\n"
          "             for testing business hours; outbox retries keep the real clock\n"
          "  -V         print the version and exit\n"
          "  -h         print this help and exit\n"
          "\nSee ticket-milter(8) and ticket-milter.conf(5).\n",
          tm_config_default_path ());
}

static void G_GNUC_NORETURN
usage_error (const char *problem, int option)
{
  fprintf (stderr, PROGRAM_NAME ": option -%c %s\n", option, problem);
  print_usage (stderr);
  exit (EX_USAGE);
}

/* The sessions run on the threads of the server's pool (milter_server.h),
 * and glibc gives those threads their own malloc arenas, which by default
 * hand memory back to the kernel (madvise) as soon as 128 KiB is free at
 * their top and then take it again on the next mail: page faults and TLB
 * shootdowns on both CPUs that made a quarter of the daemon's time per
 * mail. Fixed thresholds keep up to 64 MiB free per arena (and stop glibc
 * raising them by itself); a mail bigger than 32 MiB is still mapped and
 * unmapped. The memory benchmark shows resident size flat over 100,000
 * mails with this. */
static void
keep_freed_memory (void)
{
#ifdef HAVE_MALLOPT
  mallopt (M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  mallopt (M_MMAP_THRESHOLD, 32 * 1024 * 1024);
#endif
}

/* Session threads need far less stack than RLIMIT_STACK's 8 MiB, and
 * glibc keeps only 40 MiB of ended threads' stacks for reuse: with libmilter's
 * pool, which started and ended a thread for about every second mail, every
 * start past five mapped a new stack and every end unmapped one, a TLB
 * shootdown on every CPU. The server's pool keeps its idle threads, but a
 * burst of connections still starts threads, and smaller stacks cost less
 * address space for each. The deepest the daemon goes is GMime's recursive
 * parse of a multipart nested 1,000 deep (tests/hostile), which runs in 256
 * KiB of stack; 1 MiB leaves four times that. Threads the daemon starts
 * itself (the outbox workers) get the same size. */
#define SESSION_STACK_BYTES (1024 * 1024)

static void
size_session_stacks (void)
{
#ifdef HAVE_PTHREAD_SETATTR_DEFAULT_NP
  pthread_attr_t attributes;
  if (pthread_attr_init (&attributes) != 0)
    return;
  if (pthread_attr_setstacksize (&attributes, SESSION_STACK_BYTES) == 0)
    (void) pthread_setattr_default_np (&attributes);
  pthread_attr_destroy (&attributes);
#endif
}

int
main (int argc, char **argv)
{
  const char *config_path = NULL;
  const char *socket_override = NULL;
  gboolean foreground = FALSE;
  int option;

  /* Whatever umask started us: the pid file (which an init script running
   * as root trusts), the socket before its chmod and the database are never
   * writable by other users. (Not 027: the socket's directory must stay
   * traversable for the MTA's user; the store's directory is made 0750.) */
  umask (022);
  keep_freed_memory ();
  size_session_stacks ();

  opterr = 0;
  while ((option = getopt (argc, argv, ":c:fp:T:Vh")) != -1)
    {
      switch (option)
        {
        case 'c': config_path = optarg; break;
        case 'f': foreground = TRUE; break;
        case 'p': socket_override = optarg; break;
        case 'T':
          {
            g_autoptr (GDateTime) fixed = g_date_time_new_from_iso8601 (optarg, NULL);
            if (fixed == NULL)
              usage_error ("needs an ISO 8601 time with a zone, e.g. 2026-11-26T20:00:00+03:00",
                           option);
            milter_fixed_now = g_date_time_to_unix (fixed);
            break;
          }
        case 'V':
          printf (PROGRAM_NAME " %s (milter protocol %d)\n", PACKAGE_VERSION,
                  TM_MILTER_PROTOCOL_VERSION);
          return 0;
        case 'h':
          print_help ();
          return 0;
        case ':':
          usage_error ("needs an argument", optopt);
        default:
          usage_error ("is unknown", optopt);
        }
    }
  if (optind < argc)
    {
      fprintf (stderr, PROGRAM_NAME ": unexpected argument \"%s\"\n", argv[optind]);
      print_usage (stderr);
      return EX_USAGE;
    }

  g_autoptr (GError) error = NULL;
  TmConfig *config = tm_config_load (config_path != NULL ? config_path : tm_config_default_path (),
                                     config_path != NULL, &error);
  if (config == NULL)
    startup_fail (EX_CONFIG, "%s", error->message);
  if (socket_override != NULL)
    {
      g_free (config->milter_socket);
      config->milter_socket = g_strdup (socket_override);
    }

  /* Looked up before anything is created, so that an unknown user stops
   * start-up with nothing left behind. */
  gboolean is_root = geteuid () == 0;
  struct passwd *user = NULL;
  if (is_root && config->user != NULL)
    {
      struct passwd *entry = getpwnam (config->user);
      if (entry == NULL)
        startup_fail (EX_CONFIG, "user \"%s\" does not exist", config->user);
      /* getpwnam's buffer is static: keep a copy of what is needed. */
      user = g_new0 (struct passwd, 1);
      user->pw_name = g_strdup (entry->pw_name);
      user->pw_uid = entry->pw_uid;
      user->pw_gid = entry->pw_gid;
    }

  tm_log_open (PROGRAM_NAME, foreground);
  log_is_open = TRUE;
  if (!foreground)
    daemonize ();

  const char *socket_path = unix_socket_path (config->milter_socket);
  if (socket_path != NULL && unix_socket_is_live (socket_path))
    startup_fail (EX_CANTCREAT, "another process is already listening on %s",
                  config->milter_socket);
  if (socket_path != NULL)
    prepare_directory_of (socket_path, 0755, "socket", user);
  if (strcmp (config->store_path, ":memory:") != 0)
    prepare_directory_of (config->store_path, 0750, "store", user);
  if (config->pid_file != NULL)
    write_pid_file (config->pid_file);

  if (user != NULL && user->pw_uid != 0)
    drop_privileges (user);
  else if (is_root)
    tm_log (LOG_WARNING, "running as root: set [milter] user to an unprivileged user to drop "
            "privileges");

  tm_message_library_init ();
  tm_smtp_global_init ();
  milter_config = config;
  milter_store = open_store (config);
  if (strcmp (config->store_path, ":memory:") != 0)
    {
      milter_outbox = tm_outbox_start (config, milter_store);
    }
  else
    tm_log (LOG_WARNING, "the store is in memory: acknowledgements are queued but never sent");

  TmMilterServer *server = tm_milter_server_new (config->milter_socket, &error);
  if (server == NULL)
    startup_fail (EX_CANTCREAT, "%s", error->message);
  /* Remembered so that at exit only our own socket is removed, not one a
   * newer instance has put in its place meanwhile. */
  struct stat socket_identity = { 0 };
  if (socket_path != NULL)
    {
      if (chmod (socket_path, config->socket_mode) != 0)
        startup_fail (EX_CANTCREAT, "cannot set the mode of %s to %04o: %s", socket_path,
                      config->socket_mode, g_strerror (errno));
      if (lstat (socket_path, &socket_identity) != 0)
        startup_fail (EX_CANTCREAT, "%s: %s", socket_path, g_strerror (errno));
    }

  tm_log (LOG_INFO, PROGRAM_NAME " %s started on %s", PACKAGE_VERSION, config->milter_socket);
  startup_succeeded ();

  gboolean served = tm_milter_server_run (server, &milter_callbacks, &error);
  tm_milter_server_free (&server);

  tm_outbox_stop (&milter_outbox);
  TmStoreGroupStats group;
  tm_store_group_stats (milter_store, &group);
  if (group.commits > 0)
    tm_log (LOG_INFO, "store: %" G_GINT64_FORMAT " mails in %" G_GINT64_FORMAT
            " commits (%.2f a commit)", group.mails, group.commits,
            (double) group.mails / (double) group.commits);
  tm_store_close (&milter_store);
  if (config->pid_file != NULL && unlink (config->pid_file) != 0 && errno != ENOENT)
    tm_log (LOG_WARNING, "cannot remove the pid file %s: %s", config->pid_file,
            g_strerror (errno));
  struct stat socket_now;
  if (socket_path != NULL && lstat (socket_path, &socket_now) == 0
      && socket_now.st_dev == socket_identity.st_dev && socket_now.st_ino == socket_identity.st_ino
      && unlink (socket_path) != 0)
    tm_log (LOG_WARNING, "cannot remove the socket %s: %s", socket_path, g_strerror (errno));
  if (!served)
    tm_log (LOG_ERR, "stopped serving the MTA: %s", error->message);
  tm_log (LOG_INFO, "stopped");

  milter_config = NULL;
  tm_config_free (&config);
  if (user != NULL)
    {
      g_free (user->pw_name);
      g_free (user);
    }
  return served ? 0 : EX_SOFTWARE;
}
