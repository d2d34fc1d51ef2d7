/* ticketctl.c - the admin's and agent's command-line tool.
 *
 *   ticketctl [-c FILE] simulate [--rcpt ADDR]... [--from ADDR] [--auth USER]
 *             [--client-addr IP] [--now ISO8601] [--commit] FILE|-
 *   ticketctl [-c FILE] list [--status S] [--queue Q] [--limit N] [--json]
 *   ticketctl [-c FILE] show [--json] ID
 *   ticketctl [-c FILE] outbox [--status S] [--limit N] [--json]
 *   ticketctl [-c FILE] rules test [--json] [--language LANG] [--queue NAME] FILE|-
 *
 * simulate runs the daemon's own pipeline on a message file and prints the
 * decision as JSON (the contract in DESIGN.md); without --commit the store
 * transaction is rolled back, and a store that does not exist yet is not
 * created (an empty in-memory one stands in). The message is cut to the same
 * limits the milter applies (max_header_size, max_message_size).
 *
 * rules test shows what the keyword rules of the configuration make of a
 * mail: the language detected as for a new ticket, each rule that matched
 * (field and text), and the tags, priority, team, template language and
 * acknowledgement that result. It opens no store, so it is safe to run
 * against a live desk's configuration before reloading the daemon.
 *
 * Exit statuses follow sysexits(3): 0 done, 1 a ticket or store problem,
 * 64 usage, 66 input unreadable, 78 configuration invalid.
 */
#include "autoconfig.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "decision_json.h"
#include "language.h"
#include "message.h"
#include "pipeline.h"
#include "rules.h"
#include "store.h"

typedef struct {
  const char *config_path;     /* NULL: the default path, which may be missing */
  TmConfig *config;
} Tool;

static int G_GNUC_PRINTF (2, 3)
fail (int status, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *text = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, "ticketctl: %s\n", text);
  return status;
}

static void
usage (FILE *out)
{
  fputs ("usage: ticketctl [-c FILE] COMMAND [OPTIONS]\n"
         "commands:\n"
         "  simulate [--rcpt ADDR]... [--from ADDR] [--auth USER] [--client-addr IP]\n"
         "           [--now ISO8601] [--commit] FILE|-   what the milter would do with a mail\n"
         "  list [--status S] [--queue Q] [--limit N] [--json]   tickets, newest first\n"
         "  show [--json] ID                                      one ticket with its messages\n"
         "  outbox [--status S] [--limit N] [--json]              mail the desk sends, newest first\n"
         "  rules test [--json] [--language LANG] [--queue NAME] FILE|-\n"
         "                                   which keyword rules match a mail, and their effect\n"
         "see ticketctl(1)\n", out);
}

/* Parses a command's options; on error prints it and returns FALSE. */
static gboolean
parse_command_options (const char *command, const char *parameters, GOptionEntry *entries,
                       int *argc, char ***argv)
{
  g_autoptr (GOptionContext) context = g_option_context_new (parameters);
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_help_enabled (context, TRUE);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      fprintf (stderr, "ticketctl %s: %s\n", command, error->message);
      return FALSE;
    }
  return TRUE;
}

/* ---- simulate ---------------------------------------------------------- */

static gboolean
read_input (const char *path, GByteArray **out, GError **error)
{
  if (strcmp (path, "-") == 0)
    {
      GByteArray *bytes = g_byte_array_new ();
      guint8 buffer[65536];
      size_t got;
      while ((got = fread (buffer, 1, sizeof buffer, stdin)) > 0)
        g_byte_array_append (bytes, buffer, (guint) got);
      if (ferror (stdin))
        {
          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                       "standard input: %s", g_strerror (errno));
          g_byte_array_unref (bytes);
          return FALSE;
        }
      *out = bytes;
      return TRUE;
    }
  char *contents = NULL;
  gsize length = 0;
  if (!g_file_get_contents (path, &contents, &length, error))
    return FALSE;
  *out = g_byte_array_new_take ((guint8 *) contents, length);
  return TRUE;
}

/* The length of the header block including the blank line that ends it, or
 * the whole input when there is no blank line (a mail of headers only). */
static gsize
header_block_length (const guint8 *raw, gsize length)
{
  for (gsize i = 0; i + 1 < length; i++)
    {
      if (raw[i] != '\n')
        continue;
      if (raw[i + 1] == '\n')
        return i + 2;
      if (raw[i + 1] == '\r' && i + 2 < length && raw[i + 2] == '\n')
        return i + 3;
    }
  return length;
}

/* Applies the milter's limits: headers up to max_header_size, body up to
 * max_message_size. Returns TRUE when something was cut. */
static gboolean
cut_to_milter_limits (GByteArray *raw, const TmConfig *config)
{
  gsize headers = header_block_length (raw->data, raw->len);
  gsize body = raw->len - headers;
  gsize kept_headers = MIN (headers, config->max_header_size);
  gsize kept_body = MIN (body, config->max_message_size);
  if (kept_headers == headers && kept_body == body)
    return FALSE;
  if (kept_headers < headers)
    {
      /* Cut headers still end with the blank line that separates the body. */
      memmove (raw->data + kept_headers, raw->data + headers, kept_body);
      g_byte_array_set_size (raw, (guint) (kept_headers + kept_body));
      g_byte_array_append (raw, (const guint8 *) "\n\n", 2);
    }
  else
    g_byte_array_set_size (raw, (guint) (headers + kept_body));
  return TRUE;
}

static gboolean
parse_now (const char *text, gint64 *now)
{
  if (text == NULL)
    {
      *now = g_get_real_time () / G_USEC_PER_SEC;
      return TRUE;
    }
  g_autoptr (GTimeZone) utc = g_time_zone_new_utc ();
  g_autoptr (GDateTime) time = g_date_time_new_from_iso8601 (text, utc);
  if (time == NULL)
    return FALSE;
  *now = g_date_time_to_unix (time);
  return TRUE;
}

static int
command_simulate (Tool *tool, int argc, char **argv)
{
  g_auto (GStrv) recipients = NULL;
  g_autofree char *from = NULL, *auth = NULL, *client_addr = NULL, *now_text = NULL;
  gboolean commit = FALSE;
  GOptionEntry entries[] = {
    { "rcpt", 0, 0, G_OPTION_ARG_STRING_ARRAY, &recipients, "Envelope recipient (repeatable; default: the To and Cc addresses)", "ADDR" },
    { "from", 0, 0, G_OPTION_ARG_STRING, &from, "Envelope sender (default: the From address; \"\" for the null sender)", "ADDR" },
    { "auth", 0, 0, G_OPTION_ARG_STRING, &auth, "SASL user the mail was authenticated as", "USER" },
    { "client-addr", 0, 0, G_OPTION_ARG_STRING, &client_addr, "IP address of the SMTP client", "IP" },
    { "now", 0, 0, G_OPTION_ARG_STRING, &now_text, "The time of arrival (default: now)", "ISO8601" },
    { "commit", 0, 0, G_OPTION_ARG_NONE, &commit, "Store the result instead of a dry run", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  if (!parse_command_options ("simulate", "FILE|-", entries, &argc, &argv))
    return EX_USAGE;
  if (argc != 2)
    return fail (EX_USAGE, "simulate needs exactly one message file (or - for standard input)");
  gint64 now = 0;
  if (!parse_now (now_text, &now))
    return fail (EX_USAGE, "--now \"%s\" is not an ISO 8601 time such as 2026-11-22T10:00:00+03:00",
                 now_text);

  g_autoptr (GError) error = NULL;
  g_autoptr (GByteArray) raw = NULL;
  if (!read_input (argv[1], &raw, &error))
    return fail (EX_NOINPUT, "%s", error->message);
  gsize original_size = raw->len;
  gboolean truncated = cut_to_milter_limits (raw, tool->config);

  tm_message_library_init ();
  TmParseOptions parse_options = {
    .fallback_charsets = (const char *const *) tool->config->fallback_charsets,
    .truncated = truncated,
    .original_size = truncated ? original_size : 0,
    .hash_only_without_message_id = TRUE,  /* as the daemon parses */
  };
  TmMessage *message = tm_message_parse ((const char *) raw->data, raw->len, &parse_options);

  /* Envelope defaults come from the headers, as a plain SMTP client would set them. */
  g_autoptr (GPtrArray) envelope_recipients = g_ptr_array_new ();
  if (recipients != NULL)
    for (char **rcpt = recipients; *rcpt != NULL; rcpt++)
      g_ptr_array_add (envelope_recipients, *rcpt);
  else
    {
      for (char **rcpt = message->to; rcpt != NULL && *rcpt != NULL; rcpt++)
        g_ptr_array_add (envelope_recipients, *rcpt);
      for (char **rcpt = message->cc; rcpt != NULL && *rcpt != NULL; rcpt++)
        g_ptr_array_add (envelope_recipients, *rcpt);
    }
  g_ptr_array_add (envelope_recipients, NULL);
  TmEnvelope envelope = {
    .sender = from != NULL ? from : message->from_address != NULL ? message->from_address : "",
    .recipients = (const char *const *) envelope_recipients->pdata,
    .auth_user = auth,
    .client_addr = client_addr,
    .mta_queue_id = NULL,
  };

  /* A dry run on a store that does not exist yet must not create it. */
  const char *store_path = tool->config->store_path;
  if (!commit && g_access (store_path, F_OK) != 0)
    store_path = ":memory:";
  TmStoreOptions store_options = {
    .busy_timeout_ms = tool->config->busy_timeout_ms,
    .synchronous_full = tool->config->synchronous_full,
    .create = TRUE,
  };
  if (commit)
    {
      g_autofree char *directory = g_path_get_dirname (store_path);
      g_mkdir_with_parents (directory, 0750);
    }
  TmStore *store = tm_store_open (store_path, &store_options, &error);
  if (store == NULL)
    {
      tm_message_free (&message);
      return fail (1, "%s", error->message);
    }
  TmDecision *decision = tm_pipeline_run (tool->config, store, message, &envelope, now,
                                          commit, &error);
  int status = 0;
  if (decision == NULL)
    status = fail (1, "%s", error->message);
  else
    {
      g_autoptr (JsonNode) node = tm_decision_to_json (decision);
      g_autofree char *text = tm_json_to_string (node, TRUE);
      fputs (text, stdout);
    }
  for (guint i = 0; i < message->warnings->len; i++)
    fprintf (stderr, "ticketctl: warning: %s\n", (const char *) g_ptr_array_index (message->warnings, i));
  tm_decision_free (&decision);
  tm_store_close (&store);
  tm_message_free (&message);
  return status;
}

/* ---- list and show ----------------------------------------------------- */

static TmStore *
open_existing_store (const TmConfig *config, GError **error)
{
  TmStoreOptions options = {
    .busy_timeout_ms = config->busy_timeout_ms,
    .synchronous_full = config->synchronous_full,
    .create = FALSE,
  };
  return tm_store_open (config->store_path, &options, error);
}

static char *
format_time (gint64 unix_time)
{
  g_autoptr (GDateTime) time = g_date_time_new_from_unix_local (unix_time);
  return time != NULL ? g_date_time_format (time, "%Y-%m-%d %H:%M") : g_strdup ("?");
}

static int
command_list (Tool *tool, int argc, char **argv)
{
  g_autofree char *status_filter = NULL, *queue_filter = NULL;
  int limit = 0;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "status", 0, 0, G_OPTION_ARG_STRING, &status_filter, "Only tickets in this status", "STATUS" },
    { "queue", 0, 0, G_OPTION_ARG_STRING, &queue_filter, "Only tickets of this queue", "QUEUE" },
    { "limit", 0, 0, G_OPTION_ARG_INT, &limit, "At most N tickets", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  static const char *const statuses[] = { "new", "open", "pending", "resolved", "closed", NULL };
  if (!parse_command_options ("list", "", entries, &argc, &argv))
    return EX_USAGE;
  if (argc != 1)
    return fail (EX_USAGE, "list takes no arguments, only options");
  if (status_filter != NULL && !g_strv_contains (statuses, status_filter))
    return fail (EX_USAGE, "--status \"%s\" is not one of new, open, pending, resolved, closed",
                 status_filter);
  if (limit < 0)
    return fail (EX_USAGE, "--limit must not be negative");

  g_autoptr (GError) error = NULL;
  TmStore *store = open_existing_store (tool->config, &error);
  if (store == NULL)
    return fail (1, "%s", error->message);
  g_autoptr (GPtrArray) tickets = tm_store_list_tickets (store, status_filter, queue_filter,
                                                         (guint) limit, &error);
  tm_store_close (&store);
  if (tickets == NULL)
    return fail (1, "%s", error->message);

  if (json)
    {
      g_autoptr (JsonArray) array = json_array_new ();
      for (guint i = 0; i < tickets->len; i++)
        json_array_add_element (array, tm_ticket_to_json (g_ptr_array_index (tickets, i)));
      g_autoptr (JsonNode) node = json_node_init_array (json_node_alloc (), array);
      g_autofree char *text = tm_json_to_string (node, TRUE);
      fputs (text, stdout);
      return 0;
    }
  printf ("%-7s %-9s %-8s %-12s %-16s %-30s %s\n", "ID", "STATUS", "PRIORITY", "QUEUE",
          "UPDATED", "CUSTOMER", "SUBJECT");
  for (guint i = 0; i < tickets->len; i++)
    {
      const TmTicket *ticket = g_ptr_array_index (tickets, i);
      g_autofree char *updated = format_time (ticket->updated_at);
      printf ("%-7" G_GINT64_FORMAT " %-9s %-8s %-12s %-16s %-30s %s\n", ticket->id,
              ticket->status, ticket->priority, ticket->queue, updated,
              ticket->customer_address, ticket->subject);
    }
  return 0;
}

static void
print_ticket_text (const TmTicket *ticket, const GPtrArray *messages, const GPtrArray *events)
{
  g_autofree char *created = format_time (ticket->created_at);
  g_autofree char *updated = format_time (ticket->updated_at);
  g_autofree char *tags = g_strjoinv (", ", ticket->tags);
  printf ("Ticket:   %" G_GINT64_FORMAT "\n", ticket->id);
  printf ("Queue:    %s\n", ticket->queue);
  printf ("Customer: %s%s%s%s\n", ticket->customer_name != NULL ? ticket->customer_name : "",
          ticket->customer_name != NULL ? " <" : "", ticket->customer_address,
          ticket->customer_name != NULL ? ">" : "");
  printf ("Subject:  %s\n", ticket->subject);
  printf ("Status:   %s\nPriority: %s\n", ticket->status, ticket->priority);
  printf ("Team:     %s\nAssignee: %s\n", ticket->team != NULL ? ticket->team : "-",
          ticket->assignee != NULL ? ticket->assignee : "-");
  printf ("Language: %s\nTags:     %s\n", ticket->language != NULL ? ticket->language : "-",
          *tags != '\0' ? tags : "-");
  printf ("Created:  %s\nUpdated:  %s\n", created, updated);
  printf ("\nEvents:\n");
  for (guint i = 0; i < events->len; i++)
    {
      const TmEvent *event = g_ptr_array_index (events, i);
      g_autofree char *at = format_time (event->at);
      printf ("  %s  %-18s %s\n", at, event->kind, event->detail != NULL ? event->detail : "");
    }
  for (guint i = 0; i < messages->len; i++)
    {
      const TmStoredMessage *message = g_ptr_array_index (messages, i);
      g_autofree char *received = format_time (message->received_at);
      printf ("\n--- message %u of %u: %s, %s, from %s\n", i + 1, messages->len,
              message->direction, received,
              message->from_address != NULL ? message->from_address : message->sender);
      printf ("Subject: %s\n", message->subject);
      if (message->message_id != NULL)
        printf ("Message-ID: <%s>\n", message->message_id);
      for (guint a = 0; message->attachments != NULL && a < message->attachments->len; a++)
        {
          const TmAttachment *attachment = g_ptr_array_index (message->attachments, a);
          printf ("Attachment: %s (%s, %" G_GSIZE_FORMAT " bytes)\n",
                  *attachment->filename != '\0' ? attachment->filename : "(no name)",
                  attachment->content_type, attachment->size);
        }
      if (message->truncated)
        printf ("Note: only the first part of this %" G_GSIZE_FORMAT "-byte mail was kept\n",
                message->size);
      if (message->warnings != NULL)
        printf ("Problems: %s\n", message->warnings);
      printf ("\n%s\n", message->body_text);
    }
}

static int
command_show (Tool *tool, int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  if (!parse_command_options ("show", "ID", entries, &argc, &argv))
    return EX_USAGE;
  if (argc != 2)
    return fail (EX_USAGE, "show needs exactly one ticket id");
  guint64 id = 0;
  g_autoptr (GError) error = NULL;
  if (!g_ascii_string_to_unsigned (argv[1], 10, 1, G_MAXINT64, &id, &error))
    return fail (EX_USAGE, "\"%s\" is not a ticket id", argv[1]);

  TmStore *store = open_existing_store (tool->config, &error);
  if (store == NULL)
    return fail (1, "%s", error->message);
  g_autoptr (TmTicket) ticket = NULL;
  g_autoptr (GPtrArray) messages = NULL;
  g_autoptr (GPtrArray) events = NULL;
  if (tm_store_get_ticket (store, (gint64) id, &ticket, &error) && ticket != NULL
      && (messages = tm_store_ticket_messages (store, (gint64) id, &error)) != NULL)
    events = tm_store_ticket_events (store, (gint64) id, &error);
  tm_store_close (&store);
  if (error != NULL)
    return fail (1, "%s", error->message);
  if (ticket == NULL)
    return fail (1, "no ticket %" G_GUINT64_FORMAT, id);

  if (json)
    {
      g_autoptr (JsonNode) node = tm_ticket_with_messages_to_json (ticket, messages, events);
      g_autofree char *text = tm_json_to_string (node, TRUE);
      fputs (text, stdout);
    }
  else
    print_ticket_text (ticket, messages, events);
  return 0;
}

static int
command_outbox (Tool *tool, int argc, char **argv)
{
  g_autofree char *status_filter = NULL;
  int limit = 0;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "status", 0, 0, G_OPTION_ARG_STRING, &status_filter, "Only mail in this status", "STATUS" },
    { "limit", 0, 0, G_OPTION_ARG_INT, &limit, "At most N mails", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  static const char *const statuses[] = { "pending", "sent", "failed", NULL };
  if (!parse_command_options ("outbox", "", entries, &argc, &argv))
    return EX_USAGE;
  if (argc != 1)
    return fail (EX_USAGE, "outbox takes no arguments, only options");
  if (status_filter != NULL && !g_strv_contains (statuses, status_filter))
    return fail (EX_USAGE, "--status \"%s\" is not one of pending, sent, failed", status_filter);
  if (limit < 0)
    return fail (EX_USAGE, "--limit must not be negative");

  g_autoptr (GError) error = NULL;
  TmStore *store = open_existing_store (tool->config, &error);
  if (store == NULL)
    return fail (1, "%s", error->message);
  g_autoptr (GPtrArray) mails = tm_store_outbox_list (store, status_filter, (guint) limit, &error);
  tm_store_close (&store);
  if (mails == NULL)
    return fail (1, "%s", error->message);
  if (json)
    {
      g_autoptr (JsonArray) array = json_array_new ();
      for (guint i = 0; i < mails->len; i++)
        json_array_add_element (array, tm_outbox_mail_to_json (g_ptr_array_index (mails, i)));
      g_autoptr (JsonNode) node = json_node_init_array (json_node_alloc (), array);
      g_autofree char *text = tm_json_to_string (node, TRUE);
      fputs (text, stdout);
      return 0;
    }
  printf ("%-6s %-7s %-8s %-12s %-7s %-30s %s\n", "ID", "STATUS", "ATTEMPTS", "KIND", "TICKET",
          "TO", "LAST RESULT");
  for (guint i = 0; i < mails->len; i++)
    {
      const TmOutboxMail *mail = g_ptr_array_index (mails, i);
      printf ("%-6" G_GINT64_FORMAT " %-7s %-8d %-12s %-7" G_GINT64_FORMAT " %-30s %s\n",
              mail->id, mail->status, mail->attempts, mail->kind, mail->ticket_id,
              mail->recipient, mail->last_result != NULL ? mail->last_result : "-");
    }
  return 0;
}

/* ---- rules test -------------------------------------------------------- */

static JsonNode *
string_or_null (const char *text)
{
  JsonNode *node = json_node_alloc ();
  if (text == NULL)
    return json_node_init_null (node);
  return json_node_init_string (node, text);
}

static JsonNode *
rule_test_to_json (const char *language, const TmRuleResult *result,
                   const char *template_language, TmLanguageSource template_source)
{
  g_autoptr (JsonObject) object = json_object_new ();
  json_object_set_string_member (object, "language", language);
  JsonArray *matches = json_array_new ();
  for (guint i = 0; i < result->matches->len; i++)
    {
      const TmRuleMatch *match = g_ptr_array_index (result->matches, i);
      JsonObject *entry = json_object_new ();
      json_object_set_string_member (entry, "rule", match->rule);
      json_object_set_string_member (entry, "field", match->field);
      json_object_set_string_member (entry, "text", match->text);
      json_array_add_object_element (matches, entry);
    }
  json_object_set_array_member (object, "matches", matches);
  JsonArray *tags = json_array_new ();
  for (char **tag = result->tags; tag != NULL && *tag != NULL; tag++)
    json_array_add_string_element (tags, *tag);
  json_object_set_array_member (object, "tags", tags);
  json_object_set_member (object, "priority", string_or_null (result->priority));
  json_object_set_member (object, "team", string_or_null (result->team));
  json_object_set_string_member (object, "template_language", template_language);
  json_object_set_string_member (object, "template_language_source",
                                 tm_language_source_name (template_source));
  json_object_set_member (object, "autoreply_suppressed_by",
                          string_or_null (result->suppress_autoreply ? result->suppressed_by : NULL));
  return json_node_init_object (json_node_alloc (), object);
}

static void
print_rule_test_text (const char *language, const char *language_origin,
                      const TmRuleResult *result, const char *template_language,
                      TmLanguageSource template_source, guint rule_count)
{
  printf ("Language:          %s (%s)\n", language, language_origin);
  printf ("Rules:             %u, %u matched\n", rule_count, result->matches->len);
  for (guint i = 0; i < result->matches->len; i++)
    {
      const TmRuleMatch *match = g_ptr_array_index (result->matches, i);
      printf ("  [rule %s] %s: \"%s\"\n", match->rule, match->field, match->text);
    }
  g_autofree char *tags = result->tags != NULL ? g_strjoinv (", ", result->tags) : g_strdup ("");
  printf ("Tags:              %s\n", *tags != '\0' ? tags : "-");
  printf ("Priority:          %s\n", result->priority != NULL ? result->priority : "- (normal)");
  printf ("Team:              %s\n", result->team != NULL ? result->team : "- (the queue's)");
  printf ("Template language: %s (%s)\n", template_language,
          tm_language_source_name (template_source));
  if (result->suppress_autoreply)
    printf ("Acknowledgement:   suppressed by [rule %s]\n",
            result->suppressed_by != NULL ? result->suppressed_by : "?");
  else
    printf ("Acknowledgement:   not suppressed by rules\n");
}

static int
command_rules_test (Tool *tool, int argc, char **argv)
{
  gboolean json = FALSE;
  g_autofree char *language_option = NULL, *queue_name = NULL;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { "language", 0, 0, G_OPTION_ARG_STRING, &language_option, "Take this as the mail's language instead of detecting it", "LANG" },
    { "queue", 0, 0, G_OPTION_ARG_STRING, &queue_name, "Use this queue's default language (default: the first queue)", "NAME" },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  if (!parse_command_options ("rules test", "FILE|-", entries, &argc, &argv))
    return EX_USAGE;
  if (argc != 2)
    return fail (EX_USAGE, "rules test needs exactly one message file (or - for standard input)");

  const TmConfig *config = tool->config;
  const TmQueue *queue = NULL;
  if (queue_name != NULL)
    {
      queue = tm_config_queue_by_name (config, queue_name);
      if (queue == NULL)
        return fail (EX_USAGE, "--queue: there is no [queue %s]", queue_name);
    }
  else if (config->queues->len > 0)
    queue = g_ptr_array_index (config->queues, 0);
  else
    return fail (EX_CONFIG, "the configuration has no queue, so no default language");

  g_autoptr (GError) error = NULL;
  g_autoptr (GByteArray) raw = NULL;
  if (!read_input (argv[1], &raw, &error))
    return fail (EX_NOINPUT, "%s", error->message);
  /* The rules see what the daemon would see: the mail cut to its limits. */
  gsize original_size = raw->len;
  gboolean truncated = cut_to_milter_limits (raw, config);

  tm_message_library_init ();
  TmParseOptions parse_options = {
    .fallback_charsets = (const char *const *) config->fallback_charsets,
    .truncated = truncated,
    .original_size = truncated ? original_size : 0,
    .hash_only_without_message_id = TRUE,  /* as the daemon parses */
  };
  TmMessage *message = tm_message_parse ((const char *) raw->data, raw->len, &parse_options);

  /* Exactly what the pipeline does for a new ticket; --language stands in
   * for detection as the language the rules see. */
  g_autofree char *forced = language_option != NULL ? g_ascii_strdown (language_option, -1) : NULL;
  TmRuleResult result;
  TmLanguageSource language_source, template_source;
  g_autofree char *detected = NULL;
  g_autofree char *template_language = NULL;
  tm_pipeline_new_ticket_language (config, queue, message, forced, &result, &detected,
                                   &language_source, &template_language, &template_source);
  const char *language = forced != NULL ? forced : detected;

  if (json)
    {
      g_autoptr (JsonNode) node = rule_test_to_json (language, &result, template_language,
                                                     template_source);
      g_autofree char *text = tm_json_to_string (node, TRUE);
      fputs (text, stdout);
    }
  else
    print_rule_test_text (language, language_option != NULL ? "--language"
                          : tm_language_source_name (language_source),
                          &result, template_language, template_source,
                          tm_rule_set_count (config->rules));
  for (guint i = 0; i < message->warnings->len; i++)
    fprintf (stderr, "ticketctl: warning: %s\n", (const char *) g_ptr_array_index (message->warnings, i));
  tm_rule_result_clear (&result);
  tm_message_free (&message);
  return 0;
}

static int
command_rules (Tool *tool, int argc, char **argv)
{
  if (argc < 2)
    return fail (EX_USAGE, "rules needs a subcommand: test");
  if (strcmp (argv[1], "test") == 0)
    return command_rules_test (tool, argc - 1, argv + 1);
  return fail (EX_USAGE, "unknown rules subcommand \"%s\" (there is only: test)", argv[1]);
}

int
main (int argc, char **argv)
{
  Tool tool = { 0 };
  int arg = 1;
  while (arg < argc && argv[arg][0] == '-')
    {
      if (strcmp (argv[arg], "-c") == 0 && arg + 1 < argc)
        {
          tool.config_path = argv[arg + 1];
          arg += 2;
        }
      else if (strcmp (argv[arg], "-h") == 0 || strcmp (argv[arg], "--help") == 0)
        {
          usage (stdout);
          return 0;
        }
      else if (strcmp (argv[arg], "-V") == 0 || strcmp (argv[arg], "--version") == 0)
        {
          printf ("ticketctl %s\n", PACKAGE_VERSION);
          return 0;
        }
      else
        {
          usage (stderr);
          return fail (EX_USAGE, "unknown option %s", argv[arg]);
        }
    }
  if (arg >= argc)
    {
      usage (stderr);
      return EX_USAGE;
    }

  g_autoptr (GError) error = NULL;
  tool.config = tm_config_load (tool.config_path != NULL ? tool.config_path
                                : tm_config_default_path (),
                                tool.config_path != NULL, &error);
  if (tool.config == NULL)
    return fail (EX_CONFIG, "%s", error->message);

  const char *command = argv[arg];
  int command_argc = argc - arg;
  char **command_argv = argv + arg;
  int status;
  if (strcmp (command, "simulate") == 0)
    status = command_simulate (&tool, command_argc, command_argv);
  else if (strcmp (command, "list") == 0)
    status = command_list (&tool, command_argc, command_argv);
  else if (strcmp (command, "show") == 0)
    status = command_show (&tool, command_argc, command_argv);
  else if (strcmp (command, "outbox") == 0)
    status = command_outbox (&tool, command_argc, command_argv);
  else if (strcmp (command, "rules") == 0)
    status = command_rules (&tool, command_argc, command_argv);
  else
    {
      usage (stderr);
      status = fail (EX_USAGE, "unknown command \"%s\"", command);
    }
  tm_config_free (&tool.config);
  return status;
}
