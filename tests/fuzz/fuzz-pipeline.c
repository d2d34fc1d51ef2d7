/* fuzz-pipeline.c - libFuzzer target: one mail through the whole pipeline.
 *
 * The input is a whole mail. It is parsed (tm_message_parse, with the
 * options milter.c uses) and given to tm_pipeline_run three times, against one real
 * configuration (built in below, loaded once: two queues, teams, business
 * hours, rules with words, Arabic words and regexes, the shipped templates
 * from $TM_TEMPLATE_DIR or the source tree) and one real SQLite store:
 *   1. a dry run (commit FALSE);
 *   2. the real run (commit TRUE), which must decide what the dry run said,
 *      down to the ticket number;
 *   3. the same mail again, as an MTA's retry: the same ticket, marked
 *      duplicate, never a second acknowledgement.
 * The store is ":memory:" and lives across inputs, so later inputs thread
 * onto earlier tickets, hit the rate limit and see repeats; it is reopened
 * empty every STORE_RUNS inputs so that it cannot grow without bound. A
 * crash that depends on that history may therefore not reproduce from its
 * input alone: replay the whole corpus directory (or the -runs that led to
 * it) then.
 *
 * The envelope comes from the mail's own header block when it has these
 * lines (raw bytes, as the MTA would hand them over), else from the mail:
 *   X-Fuzz-Sender: MAIL FROM       (else the From: address; "" is <>)
 *   X-Fuzz-Rcpt: A, B, ...         (else To: and Cc: plus support@example.test)
 *   X-Fuzz-Auth: SASL user         (else none)
 *   X-Fuzz-Client: client address  (else 192.0.2.1, not trusted)
 * The clock is fixed: Monday 2026-11-23 06:00 UTC plus up to two weeks,
 * chosen by a hash of the input, so both open and closed hours happen.
 *
 * Checked for every decision: the promises of pipeline.h and the milter's
 * needs (header names and values it will add are single-line and free of
 * control characters; recipients and Reply-To are plain addresses; the
 * subject header is one line), the JSON of `ticketctl simulate` is valid
 * JSON, and every acknowledgement queued in the outbox is a mail that GMime
 * reads with exactly one From, one To (the outbox recipient), one Subject,
 * no Cc or Bcc, one text part, 7-bit CRLF lines of at most 998 octets.
 */
#include <string.h>

#include <gmime/gmime.h>
#include <json-glib/json-glib.h>

#include "config.h"
#include "decision_json.h"
#include "message.h"
#include "pipeline.h"
#include "store.h"
#include "fuzz-common.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

/* Inputs between two fresh stores. */
#define STORE_RUNS 500
/* Monday 2026-11-23 06:00:00 UTC: before the office opens in Riyadh. */
#define BASE_NOW G_GINT64_CONSTANT (1795413600)
#define MAX_RECIPIENTS 16

static const char config_text[] =
  "[milter]\n"
  "trusted_networks = 127.0.0.1/32;::1/128\n"
  "[store]\n"
  "path = /nonexistent/ticket-milter-fuzz.db\n"
  "[parser]\n"
  "fallback_charsets = UTF-8;windows-1256\n"
  "[autoreply]\n"
  "spam_header = X-Spam-Flag\n"
  "spam_value = yes\n"
  "[queue support]\n"
  "address = support@example.test;support@example.com;help@example.com\n"
  "tag_prefix = Ticket\n"
  "team = frontline\n"
  "language = en\n"
  "display_name = Example Support \"Desk\"\n"
  "hours = office\n"
  "first_response = 4h\n"
  "ack_rate_limit = 1h\n"
  "form_senders = forms@example.test\n"
  "[queue billing]\n"
  "address = billing@example.test;billing@example.com\n"
  "tag_prefix = Billing\n"
  "language = ar\n"
  "display_name = الدعم الفني\n"
  "ack_followups = yes\n"
  "ack_rate_limit = 0\n"
  "keep_address = yes\n"
  "[team frontline]\n"
  "mailbox = frontline@example.test\n"
  "agents = alice@example.test;bob@example.com\n"
  "[team billing]\n"
  "mailbox = billing-team@example.test\n"
  "agents = carol@example.test\n"
  "[hours office]\n"
  "timezone = Asia/Riyadh\n"
  "days = sun-thu\n"
  "open = 09:00-17:00\n"
  "holidays = 2026-11-26;2026-12-01..2026-12-02\n"
  "[rule urgent]\n"
  "subject = urgent;asap;عاجل;فوری;/re(fund|turn)s?/\n"
  "priority = urgent\n"
  "tags = urgent\n"
  "[rule billing]\n"
  "subject = invoice;فاتورة;صورت‌حساب;/\\b(ال|بال|لل)?فاتور[ةه]\\b/\n"
  "body = refund;credit card;استرداد\n"
  "match = any\n"
  "tags = billing\n"
  "team = billing\n"
  "[rule persian]\n"
  "language = fa\n"
  "template_language = fa\n"
  "tags = persian\n"
  "[rule attachments]\n"
  "attachment = /\\.(exe|js|scr)$/\n"
  "from = example.net\n"
  "priority = high\n"
  "[rule quiet]\n"
  "header.X-Priority = 5;/^5 \\(lowest\\)/\n"
  "autoreply = no\n"
  "priority = low\n"
  "stop = yes\n";

static TmConfig *config;
static TmStore *store;
static guint store_runs;

static void
open_store (void)
{
  tm_store_close (&store);
  GError *error = NULL;
  TmStoreOptions options = { .busy_timeout_ms = 1000, .synchronous_full = FALSE, .create = TRUE };
  store = tm_store_open (":memory:", &options, &error);
  FUZZ_CHECK (store != NULL, "cannot open the store: %s", error->message);
  store_runs = 0;
}

static void
close_all (void)
{
  tm_store_close (&store);
  tm_config_free (&config);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_glib ();
  g_autofree char *text = g_strdup_printf ("%s[templates]\ndir = %s\n", config_text,
                                           fuzz_template_dir ());
  g_autofree char *path = g_build_filename (fuzz_scratch_dir (), "ticket-milter.conf", NULL);
  fuzz_write_file (path, text, strlen (text));
  GError *error = NULL;
  config = tm_config_load (path, TRUE, &error);
  FUZZ_CHECK (config != NULL, "the built-in configuration does not load: %s", error->message);
  g_unlink (path);
  open_store ();
  atexit (close_all);
  return 0;
}

/* ---- the envelope ------------------------------------------------------- */

typedef struct {
  char *sender;
  char *auth_user;
  char *client_addr;
  GPtrArray *recipients;     /* of char*, NULL-terminated */
} FuzzEnvelope;

/* The raw bytes after "NAME:" on the first such line of the header block,
 * leading blanks skipped; NUL bytes end it (libmilter hands C strings). */
static char *
raw_header (const char *data, gsize size, const char *name)
{
  gsize name_length = strlen (name);
  gsize pos = 0;
  while (pos < size)
    {
      const char *nl = memchr (data + pos, '\n', size - pos);
      gsize end = nl != NULL ? (gsize) (nl - data) : size;
      gsize content_end = end > pos && data[end - 1] == '\r' ? end - 1 : end;
      if (content_end == pos)
        return NULL;
      if (content_end - pos > name_length && data[pos + name_length] == ':'
          && g_ascii_strncasecmp (data + pos, name, name_length) == 0)
        {
          gsize v = pos + name_length + 1;
          while (v < content_end && (data[v] == ' ' || data[v] == '\t'))
            v++;
          return g_strndup (data + v, content_end - v);
        }
      pos = end + 1;
    }
  return NULL;
}

static void
envelope_fill (FuzzEnvelope *envelope, const char *data, gsize size, const TmMessage *msg)
{
  envelope->sender = raw_header (data, size, "X-Fuzz-Sender");
  if (envelope->sender == NULL)
    envelope->sender = g_strdup (msg->from_address != NULL ? msg->from_address : "");
  envelope->auth_user = raw_header (data, size, "X-Fuzz-Auth");
  envelope->client_addr = raw_header (data, size, "X-Fuzz-Client");
  if (envelope->client_addr == NULL)
    envelope->client_addr = g_strdup ("192.0.2.1");
  envelope->recipients = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *rcpt = raw_header (data, size, "X-Fuzz-Rcpt");
  if (rcpt != NULL)
    {
      g_auto (GStrv) list = g_strsplit (rcpt, ",", MAX_RECIPIENTS);
      for (char **r = list; *r != NULL; r++)
        g_ptr_array_add (envelope->recipients, g_strdup (g_strstrip (*r)));
    }
  else
    {
      for (char **r = msg->to; *r != NULL && envelope->recipients->len < MAX_RECIPIENTS; r++)
        g_ptr_array_add (envelope->recipients, g_strdup (*r));
      for (char **r = msg->cc; *r != NULL && envelope->recipients->len < MAX_RECIPIENTS; r++)
        g_ptr_array_add (envelope->recipients, g_strdup (*r));
      g_ptr_array_add (envelope->recipients, g_strdup ("support@example.test"));
    }
  g_ptr_array_add (envelope->recipients, NULL);
}

static void
envelope_clear (FuzzEnvelope *envelope)
{
  g_free (envelope->sender);
  g_free (envelope->auth_user);
  g_free (envelope->client_addr);
  g_ptr_array_unref (envelope->recipients);
}

/* ---- checks --------------------------------------------------------------- */

/* What the milter may pass to smfi_addheader / smfi_chgheader: one line,
 * no control characters at all (a tab is folding white space, but nothing
 * we set needs one). */
static void
check_header_text (const char *what, const char *text)
{
  fuzz_check_text (what, text);
  for (const char *c = text; *c != '\0'; c++)
    FUZZ_CHECK ((guchar) *c >= 0x20 && *c != 0x7f, "%s \"%s\" has control byte 0x%02x", what,
                text, (guchar) *c);
}

/* What goes into smfi_addrcpt "<%s>" or a Reply-To: a plain address. */
static void
check_plain_address (const char *what, const char *address)
{
  check_header_text (what, address);
  FUZZ_CHECK (*address != '\0', "%s is empty", what);
  for (const char *c = address; *c != '\0'; c++)
    FUZZ_CHECK (*c != ' ' && *c != '<' && *c != '>' && *c != ',', "%s \"%s\"", what, address);
}

static void
check_decision (const TmDecision *d, const TmMessage *msg)
{
  FUZZ_CHECK (d->classification.reason != NULL, "no reason");
  gboolean touched = d->classification.queue != NULL && d->classification.klass != TM_CLASS_LOOP;
  FUZZ_CHECK (touched == (d->ticket_id > 0), "class %s, queue %s, ticket %" G_GINT64_FORMAT,
              tm_class_name (d->classification.klass),
              d->classification.queue != NULL ? d->classification.queue->name : "-",
              d->ticket_id);
  FUZZ_CHECK (d->classification.klass != TM_CLASS_NOT_SUPPORT || d->classification.queue == NULL,
              "not-support with a queue");
  FUZZ_CHECK (d->tags != NULL, "tags NULL");
  for (char **t = d->tags; *t != NULL; t++)
    fuzz_check_text ("tag", *t);
  FUZZ_CHECK (d->autoreply_reason != NULL && d->autoreply_template != NULL
              && d->autoreply_language != NULL, "autoreply fields missing");
  FUZZ_CHECK (!d->autoreply_send || touched, "an acknowledgement without a ticket");
  FUZZ_CHECK (!d->autoreply_send || d->classification.klass == TM_CLASS_CUSTOMER,
              "an acknowledgement to %s mail", tm_class_name (d->classification.klass));
  if (touched)
    {
      FUZZ_CHECK (d->status != NULL && d->priority != NULL, "status or priority missing");
      FUZZ_CHECK (tm_priority_rank (d->priority) >= 0, "priority %s", d->priority);
      fuzz_check_optional_text ("customer_address", d->customer_address);
      fuzz_check_optional_text ("customer_name", d->customer_name);
    }
  for (guint i = 0; i < d->headers->len; i++)
    {
      const TmHeaderChange *change = g_ptr_array_index (d->headers, i);
      check_header_text ("header name", change->name);
      FUZZ_CHECK (g_str_has_prefix (change->name, "X-Ticket-"), "header %s", change->name);
      check_header_text (change->name, change->value);
    }
  for (guint i = 0; i < d->recipients_add->len; i++)
    check_plain_address ("recipient to add", g_ptr_array_index (d->recipients_add, i));
  for (guint i = 0; i < d->recipients_remove->len; i++)
    check_plain_address ("recipient to remove", g_ptr_array_index (d->recipients_remove, i));
  if (d->reply_to != NULL)
    check_plain_address ("reply_to", d->reply_to);
  if (d->subject != NULL)
    {
      fuzz_check_text ("subject", d->subject);
      FUZZ_CHECK (d->subject_header != NULL, "a subject without its header value");
      check_header_text ("subject header", d->subject_header);
    }
  FUZZ_CHECK (d->truncated == msg->truncated, "truncated flag");

  g_autofree char *summary = tm_decision_summary (d);
  fuzz_check_text ("summary", summary);
  FUZZ_CHECK (strchr (summary, '\n') == NULL, "summary has a line feed");

  JsonNode *node = tm_decision_to_json (d);
  g_autofree char *json = tm_json_to_string (node, FALSE);
  json_node_unref (node);
  fuzz_check_text ("decision JSON", json);
  GError *error = NULL;
  JsonNode *back = json_from_string (json, &error);
  FUZZ_CHECK (back != NULL, "decision JSON does not parse back: %s",
              error != NULL ? error->message : "empty");
  json_node_unref (back);
}

/* Header fields named NAME in the header block of TEXT, on the raw text. */
static guint
raw_header_count (const char *text, const char *name)
{
  gsize name_length = strlen (name);
  const char *end = strstr (text, "\r\n\r\n");
  guint count = 0;
  for (const char *line = text; line != NULL && line <= end;)
    {
      if (g_ascii_strncasecmp (line, name, name_length) == 0 && line[name_length] == ':')
        count++;
      line = strstr (line, "\r\n");
      if (line != NULL)
        line += 2;
    }
  return count;
}

static void
count_part (GMimeObject *parent, GMimeObject *part, gpointer user_data)
{
  (*(guint *) user_data)++;
}

static void
check_outbox_mail (const TmDecision *d)
{
  GError *error = NULL;
  GPtrArray *mails = tm_store_outbox_list (store, NULL, 1, &error);
  FUZZ_CHECK (mails != NULL, "outbox list: %s", error->message);
  FUZZ_CHECK (mails->len == 1, "an acknowledgement was sent but the outbox is empty");
  const TmOutboxMail *mail = g_ptr_array_index (mails, 0);
  FUZZ_CHECK (g_strcmp0 (mail->message_id, d->autoreply_message_id) == 0,
              "outbox holds %s, decision says %s", mail->message_id, d->autoreply_message_id);
  FUZZ_CHECK (mail->ticket_id == d->ticket_id, "outbox mail for another ticket");
  FUZZ_CHECK (strcmp (mail->sender, "") == 0, "acknowledgement with sender \"%s\"", mail->sender);
  check_plain_address ("outbox recipient", mail->recipient);

  /* Wire format: 7-bit, CRLF only, lines of at most 998 octets. */
  const char *text = mail->data;
  FUZZ_CHECK (text != NULL && mail->length == strlen (text), "outbox data length");
  gsize line_length = 0;
  for (gsize i = 0; i < mail->length; i++)
    {
      guchar c = (guchar) text[i];
      FUZZ_CHECK (c < 0x80, "8-bit byte in the acknowledgement");
      if (c == '\r')
        {
          FUZZ_CHECK (text[i + 1] == '\n', "bare CR in the acknowledgement");
          FUZZ_CHECK (line_length <= 998, "line of %zu octets", line_length);
          line_length = 0;
          i++;
          continue;
        }
      FUZZ_CHECK (c != '\n', "bare LF in the acknowledgement");
      line_length++;
    }
  FUZZ_CHECK (line_length == 0, "no final CRLF");

  FUZZ_CHECK (raw_header_count (text, "To") == 1, "%u To headers", raw_header_count (text, "To"));
  FUZZ_CHECK (raw_header_count (text, "From") == 1, "From headers");
  FUZZ_CHECK (raw_header_count (text, "Subject") == 1, "Subject headers");
  FUZZ_CHECK (raw_header_count (text, "Message-ID") == 1, "Message-ID headers");
  FUZZ_CHECK (raw_header_count (text, "Content-Type") == 1, "Content-Type headers");
  FUZZ_CHECK (raw_header_count (text, "Cc") == 0 && raw_header_count (text, "Bcc") == 0,
              "Cc or Bcc in the acknowledgement");
  FUZZ_CHECK (raw_header_count (text, "Auto-Submitted") == 1, "Auto-Submitted headers");

  GMimeStream *stream = g_mime_stream_mem_new_with_buffer (text, mail->length);
  GMimeParser *parser = g_mime_parser_new_with_stream (stream);
  GMimeMessage *message = g_mime_parser_construct_message (parser, NULL);
  FUZZ_CHECK (message != NULL, "GMime cannot read the acknowledgement");
  InternetAddressList *to = g_mime_message_get_to (message);
  FUZZ_CHECK (internet_address_list_length (to) == 1, "%d To addresses",
              internet_address_list_length (to));
  InternetAddress *address = internet_address_list_get_address (to, 0);
  FUZZ_CHECK (INTERNET_ADDRESS_IS_MAILBOX (address), "To is a group");
  /* GMime shows an IDN domain ("xn--...") decoded, and its ASCII form of
   * that need not be the one written (punycode has more than one spelling;
   * the recipient is lower-cased, so "xn--" is enough to look for). */
  const char *addr = internet_address_mailbox_get_idn_addr (INTERNET_ADDRESS_MAILBOX (address));
  FUZZ_CHECK (g_ascii_strcasecmp (addr, mail->recipient) == 0
              || strstr (mail->recipient, "xn--") != NULL,
              "To <%s> is not the envelope recipient <%s>", addr, mail->recipient);
  FUZZ_CHECK (internet_address_list_length (g_mime_message_get_from (message)) == 1, "From");
  InternetAddressList *cc = g_mime_message_get_cc (message);
  InternetAddressList *bcc = g_mime_message_get_bcc (message);
  FUZZ_CHECK ((cc == NULL || internet_address_list_length (cc) == 0)
              && (bcc == NULL || internet_address_list_length (bcc) == 0), "Cc or Bcc");
  guint parts = 0;
  g_mime_message_foreach (message, count_part, &parts);
  FUZZ_CHECK (parts == 1, "%u MIME parts", parts);
  g_object_unref (message);
  g_object_unref (parser);
  g_object_unref (stream);
  g_ptr_array_unref (mails);
}

static TmDecision *
run (const TmMessage *msg, const TmEnvelope *envelope, gint64 now, gboolean commit)
{
  GError *error = NULL;
  TmDecision *d = tm_pipeline_run (config, store, msg, envelope, now, commit, &error);
  FUZZ_CHECK (d != NULL, "the pipeline failed: %s", error != NULL ? error->message : "?");
  check_decision (d, msg);
  return d;
}

static guint32
hash_bytes (const guint8 *data, gsize size)
{
  guint32 h = 2166136261u;
  for (gsize i = 0; i < size; i++)
    h = (h ^ data[i]) * 16777619u;
  return h;
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  if (++store_runs > STORE_RUNS)
    open_store ();
  const char *raw = (const char *) data;
  TmParseOptions options = { .fallback_charsets = (const char *const *) config->fallback_charsets,
                             .hash_only_without_message_id = TRUE /* as milter.c parses */ };
  TmMessage *msg = tm_message_parse (raw, size, &options);
  FuzzEnvelope fuzz = { 0 };
  envelope_fill (&fuzz, raw, size, msg);
  TmEnvelope envelope = {
    .sender = fuzz.sender,
    .recipients = (const char *const *) fuzz.recipients->pdata,
    .auth_user = fuzz.auth_user,
    .client_addr = fuzz.client_addr,
    .mta_queue_id = "4FUZZ1",
  };
  gint64 now = BASE_NOW + hash_bytes (data, size) % (14 * 86400);

  TmDecision *dry = run (msg, &envelope, now, FALSE);
  FUZZ_CHECK (dry->autoreply_message_id == NULL && dry->message_row == 0,
              "a dry run left traces");
  TmDecision *real = run (msg, &envelope, now, TRUE);
  FUZZ_CHECK (dry->classification.klass == real->classification.klass
              && dry->ticket_id == real->ticket_id && dry->ticket_new == real->ticket_new
              && dry->duplicate == real->duplicate
              && dry->autoreply_send == real->autoreply_send
              && g_strcmp0 (dry->autoreply_reason, real->autoreply_reason) == 0
              && g_strcmp0 (dry->team, real->team) == 0
              && g_strcmp0 (dry->subject, real->subject) == 0
              && g_strv_equal ((const char *const *) dry->tags, (const char *const *) real->tags),
              "the dry run said ticket %" G_GINT64_FORMAT " (%s), the real run ticket %"
              G_GINT64_FORMAT " (%s)", dry->ticket_id, dry->autoreply_reason, real->ticket_id,
              real->autoreply_reason);
  if (real->autoreply_send)
    {
      FUZZ_CHECK (real->autoreply_message_id != NULL, "sent without a Message-ID");
      check_outbox_mail (real);
    }

  /* The MTA retries: nothing new may happen. */
  TmDecision *retry = run (msg, &envelope, now + 30, TRUE);
  FUZZ_CHECK (retry->ticket_id == real->ticket_id, "a retry went to ticket %" G_GINT64_FORMAT
              " instead of %" G_GINT64_FORMAT, retry->ticket_id, real->ticket_id);
  FUZZ_CHECK (real->ticket_id == 0 || retry->duplicate, "a retry was not seen as a duplicate");
  FUZZ_CHECK (!retry->autoreply_send, "a retry was acknowledged again");
  FUZZ_CHECK (!retry->ticket_new, "a retry opened a ticket");

  tm_decision_free (&retry);
  tm_decision_free (&real);
  tm_decision_free (&dry);
  envelope_clear (&fuzz);
  tm_message_free (&msg);
  return 0;
}
