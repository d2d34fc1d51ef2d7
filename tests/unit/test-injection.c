/* test-injection.c - no field of a received mail can add a header, a
 * recipient or a part to anything the desk writes.
 *
 * test-ack-mail.c feeds hostile values to the composer directly; here they
 * come the way an attacker has to send them: inside a raw mail, through
 * tm_message_parse() and tm_pipeline_run() on a real store, so that every
 * field on the way is covered - display names, addresses (quoted local
 * parts, groups, several mailboxes), Subject, Message-ID, In-Reply-To,
 * References, Content-Language, Reply-To of a contact form, the envelope -
 * with CR, LF, CRLF, NUL, U+0085, U+2028, U+2029, very long lines and RFC
 * 2047 encoded words that decode to line breaks (=?utf-8?q?a=0D=0ABcc:_x?=).
 *
 * For every mail two things are checked (run_and_check()):
 *  - the decision the milter applies to the passing mail: only the desk's
 *    own X-Ticket-* headers, each once, whose values hold no control
 *    character or line separator (C0, DEL, C1, U+2028, U+2029) and no word
 *    too long to fold within 998 octets (the milter folds at white space);
 *    the rewritten Subject printable ASCII that decodes (RFC 2047) to one
 *    such line; Reply-To only ever the queue's address; recipients added
 *    only configured team mailboxes, removed only queue addresses that were
 *    in the envelope; the ticket's language one that has templates;
 *  - the acknowledgement in the outbox, parsed back with GMime: only the
 *    headers the desk writes, each at most once, one From (the queue), one
 *    To and that the ticket's customer, who is also the one envelope
 *    recipient (null envelope sender), no Cc, Bcc, Reply-To or Sender, one
 *    Subject with the ticket tag, names and Subject decoding to one line,
 *    one text/plain part with as many lines as the template's body, and
 *    wire format fit for SMTP DATA.
 * The encoder for the rewritten Subject (tm_ack_mail_header_value()) and
 * every placeholder of every shipped template get cases of their own.
 * Named cases put each attack into each field; then a generator with a
 * fixed seed mixes them at random (TM_INJECTION_ITERATIONS, default 1500,
 * and TM_INJECTION_SEED change the run; a failure prints the mail).
 */
#include "pipeline.h"

#include <string.h>

#include <gmime/gmime.h>

#include "ack_mail.h"
#include "store.h"
#include "template.h"
#include "tm-test.h"

typedef TmTestDesk Fixture;

/* The display name carries what an admin might paste: an encoded-word
 * lookalike and a Unicode line separator (config.c refuses C0 controls). */
static const char config_text[] =
  "[store]\nbusy_timeout = 1000\n"
  "[queue support]\naddress = support@example.test;help@example.test\n"
  "tag_prefix = Ticket\nteam = frontline\n"
  "display_name = Support =?utf-8?q?a=0D=0ABcc:_x@evil.example?= \xe2\x80\xa8 desk\n"
  "ack_rate_limit = 0\nform_senders = form@example.test\n"
  "[queue billing]\naddress = billing@example.test\ntag_prefix = Bill\nlanguage = ar\n"
  "ack_rate_limit = 0\n"
  "[team frontline]\nmailbox = frontline@example.test\nagents = alice@example.test\n"
  "[team accounts]\nmailbox = accounts@example.test\n"
  "[rule invoices]\nsubject = invoice;فاتورة\ntags = billing;فوترة\nteam = accounts\n";

static const char *const decision_header_names[] = {
  "X-Ticket-ID", "X-Ticket-Queue", "X-Ticket-Priority", "X-Ticket-Team", "X-Ticket-Tags",
  "X-Ticket-Customer", NULL
};

/* Every header an acknowledgement may have (ack_mail.h), and those it must. */
static const char *const ack_header_names[] = {
  "From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
  "Auto-Submitted", "X-Auto-Response-Suppress", "X-Loop", "X-Ticket-ID", "X-Ticket-Queue",
  "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Language", NULL
};
static const char *const ack_required_names[] = {
  "From", "Subject", "Date", "Message-ID", "Auto-Submitted", "X-Auto-Response-Suppress",
  "X-Loop", "X-Ticket-ID", "X-Ticket-Queue", "MIME-Version", "Content-Type", NULL
};

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  tm_test_desk_open (fixture, config_text);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  tm_test_desk_close (fixture);
}

/* ---- what may appear where ----------------------------------------------- */

/* A character that could end or break a line for some reader: C0, DEL, C1
 * (U+0085 NEL among them), U+2028, U+2029. */
static gboolean
is_line_breaking (gunichar c)
{
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029;
}

/* NULL when TEXT is valid UTF-8 without such characters, else why not. */
static const char *
unsafe_text (const char *text, gboolean allow_tab)
{
  if (!g_utf8_validate (text, -1, NULL))
    return "invalid UTF-8";
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (c == '\t' && allow_tab)
        continue;
      if (is_line_breaking (c))
        return c == '\r' ? "CR" : c == '\n' ? "LF" : "a control character or line separator";
    }
  return NULL;
}

/* The longest run without white space in VALUE: the milter folds a header
 * value only at white space, so a longer run makes a line longer than RFC
 * 5322's 998 octets once "Name: " is in front. */
static gsize
longest_word (const char *value)
{
  gsize longest = 0, length = 0;
  for (const char *c = value; *c != '\0'; c++)
    {
      length = *c == ' ' || *c == '\t' ? 0 : length + 1;
      longest = MAX (longest, length);
    }
  return longest;
}

/* The composer's rule for an address it writes (ack_mail.c): printable
 * ASCII, no structural specials, exactly one '@' with text on both sides. */
static gboolean
ack_would_write_address (const char *address)
{
  gsize length = strlen (address);
  const char *at = strchr (address, '@');
  if (length < 3 || length > 254 || at == NULL || at == address || at[1] == '\0'
      || strchr (at + 1, '@') != NULL)
    return FALSE;
  for (const char *c = address; *c != '\0'; c++)
    if (*c <= ' ' || *c >= 0x7f || strchr ("<>()[]\\,;:\"", *c) != NULL)
      return FALSE;
  return TRUE;
}

static gboolean
is_team_mailbox (const TmConfig *config, const char *address)
{
  for (guint i = 0; i < config->teams->len; i++)
    if (strcmp (((const TmTeam *) g_ptr_array_index (config->teams, i))->mailbox, address) == 0)
      return TRUE;
  return FALSE;
}

/* What was found wrong with one mail's outcome, for the failure message. */
typedef struct {
  GString *problems;
} Check;

static void check_fail (Check *check, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
check_fail (Check *check, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_string_append (check->problems, "  - ");
  g_string_append_vprintf (check->problems, format, args);
  g_string_append_c (check->problems, '\n');
  va_end (args);
}

/* ---- the decision for the passing mail ----------------------------------- */

static void
check_decision (Check *check, const TmConfig *config, const TmDecision *decision,
                const char *const *envelope_recipients)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < decision->headers->len; i++)
    {
      const TmHeaderChange *change = g_ptr_array_index (decision->headers, i);
      if (!g_strv_contains (decision_header_names, change->name))
        check_fail (check, "the milter would add a header %s", change->name);
      if (!g_hash_table_add (seen, change->name))
        check_fail (check, "the milter would add %s twice", change->name);
      const char *why = unsafe_text (change->value, FALSE);
      if (why != NULL)
        {
          g_autofree char *shown = g_strescape (change->value, NULL);
          check_fail (check, "%s value has %s: \"%.200s\"", change->name, why, shown);
        }
      if (strlen (change->name) + 2 + longest_word (change->value) > 998)
        check_fail (check, "%s value has a word of %" G_GSIZE_FORMAT " octets: no folding "
                    "keeps its line within 998", change->name, longest_word (change->value));
    }
  if (decision->subject_header != NULL)
    {
      for (const char *c = decision->subject_header; *c != '\0'; c++)
        if ((guchar) *c < 0x20 || (guchar) *c >= 0x7f)
          {
            g_autofree char *shown = g_strescape (decision->subject_header, NULL);
            check_fail (check, "the rewritten Subject header is not printable ASCII: \"%.200s\"",
                        shown);
            break;
          }
      if (strlen ("Subject: ") + longest_word (decision->subject_header) > 998)
        check_fail (check, "the rewritten Subject has a word of %" G_GSIZE_FORMAT " octets",
                    longest_word (decision->subject_header));
      /* Decoded, as the agent's mail client shows it: still one line. */
      g_autofree char *decoded = g_mime_utils_header_decode_text (NULL, decision->subject_header);
      const char *why = decoded != NULL ? unsafe_text (decoded, FALSE) : NULL;
      if (why != NULL)
        {
          g_autofree char *shown = g_strescape (decoded, NULL);
          check_fail (check, "the rewritten Subject decodes to text with %s: \"%.200s\"", why,
                      shown);
        }
    }
  const TmQueue *queue = decision->classification.queue;
  if (decision->reply_to != NULL
      && (queue == NULL || strcmp (decision->reply_to, queue->addresses[0]) != 0))
    check_fail (check, "Reply-To would be set to \"%s\", not the queue's address",
                decision->reply_to);
  if (decision->recipients_add->len > 1)
    check_fail (check, "%u recipients would be added", decision->recipients_add->len);
  for (guint i = 0; i < decision->recipients_add->len; i++)
    {
      const char *added = g_ptr_array_index (decision->recipients_add, i);
      if (!is_team_mailbox (config, added))
        check_fail (check, "recipient \"%s\" would be added: no team mailbox", added);
    }
  for (guint i = 0; i < decision->recipients_remove->len; i++)
    {
      const char *removed = g_ptr_array_index (decision->recipients_remove, i);
      if (queue == NULL || !g_strv_contains ((const char *const *) queue->addresses, removed))
        check_fail (check, "recipient \"%s\" would be removed: no queue address", removed);
      gboolean in_envelope = FALSE;
      for (const char *const *r = envelope_recipients; *r != NULL; r++)
        {
          g_autofree char *normal = tm_address_normalize (*r);
          in_envelope |= strcmp (normal, removed) == 0;
        }
      if (!in_envelope)
        check_fail (check, "recipient \"%s\" would be removed but is not in the envelope",
                    removed);
    }
  if (decision->ticket_id != 0)
    {
      const char *const *available = tm_template_set_languages (config->templates, "ack");
      if (decision->language == NULL || !g_strv_contains (available, decision->language))
        check_fail (check, "ticket language \"%s\" has no templates",
                    decision->language != NULL ? decision->language : "(null)");
    }
}

/* ---- the acknowledgement ------------------------------------------------- */

/* 7-bit, no NUL, CRLF only, lines of at most 998 octets, final CRLF. */
static void
check_wire_format (Check *check, const char *text)
{
  gsize line_length = 0, line = 1;
  for (const char *c = text; *c != '\0'; c++)
    {
      if ((guchar) *c >= 0x80)
        {
          check_fail (check, "ack line %" G_GSIZE_FORMAT " has an 8-bit byte", line);
          return;
        }
      if (*c == '\r' && c[1] == '\n')
        {
          if (line_length > 998)
            check_fail (check, "ack line %" G_GSIZE_FORMAT " is %" G_GSIZE_FORMAT " octets",
                        line, line_length);
          line_length = 0;
          line++;
          c++;
          continue;
        }
      if (*c == '\r' || *c == '\n')
        {
          check_fail (check, "ack line %" G_GSIZE_FORMAT " has a bare %s", line,
                      *c == '\r' ? "CR" : "LF");
          return;
        }
      line_length++;
    }
  if (line_length != 0)
    check_fail (check, "the ack does not end with CRLF");
}

/* Header field names of the header block of TEXT, counted on the raw text so
 * that no parser can hide one. */
static GHashTable *
raw_header_counts (Check *check, const char *text)
{
  GHashTable *counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const char *end = strstr (text, "\r\n\r\n");
  if (end == NULL)
    {
      check_fail (check, "the ack has no end of headers");
      return counts;
    }
  for (const char *line = text; line <= end; line = strstr (line, "\r\n") + 2)
    {
      if (*line == ' ' || *line == '\t')
        continue;               /* a folded continuation */
      const char *colon = strchr (line, ':');
      const char *eol = strstr (line, "\r\n");
      if (colon == NULL || colon > eol || colon == line)
        {
          check_fail (check, "ack header line without a name: \"%.60s\"", line);
          continue;
        }
      char *name = g_ascii_strdown (line, colon - line);
      g_hash_table_insert (counts, name,
                           GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (counts, name)) + 1));
    }
  return counts;
}

static guint
count_of (GHashTable *counts, const char *name)
{
  g_autofree char *lower = g_ascii_strdown (name, -1);
  return GPOINTER_TO_UINT (g_hash_table_lookup (counts, lower));
}

/* Lines of the template's body once rendered: values can never add any. */
static guint
template_body_lines (const TmConfig *config, const char *language, const char *name)
{
  const TmTemplate *template_ = tm_template_set_lookup (config->templates, language, name);
  g_assert_nonnull (template_);
  g_autoptr (GHashTable) values = g_hash_table_new (g_str_hash, g_str_equal);
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  tm_template_render (template_, values, &subject, &body);
  guint lines = 0;
  for (const char *c = body; *c != '\0'; c++)
    lines += *c == '\n';
  if (*body != '\0' && !g_str_has_suffix (body, "\n"))
    lines++;
  return lines;
}

static void
check_text_field (Check *check, const char *what, const char *value)
{
  if (value == NULL)
    return;
  const char *why = unsafe_text (value, FALSE);
  if (why != NULL)
    {
      g_autofree char *shown = g_strescape (value, NULL);
      check_fail (check, "ack %s reads back with %s: \"%.200s\"", what, why, shown);
    }
}

static void
check_ack (Check *check, const TmConfig *config, const TmDecision *decision,
           const TmOutboxMail *mail)
{
  const TmQueue *queue = decision->classification.queue;
  const char *customer = decision->customer_address;
  if (strcmp (mail->recipient, customer) != 0)
    check_fail (check, "ack envelope recipient \"%s\" is not the customer \"%s\"",
                mail->recipient, customer);
  if (*mail->sender != '\0')
    check_fail (check, "ack envelope sender is \"%s\", not the null sender", mail->sender);
  if (mail->ticket_id != decision->ticket_id)
    check_fail (check, "ack is about ticket %" G_GINT64_FORMAT, mail->ticket_id);

  const char *text = mail->data;
  check_wire_format (check, text);
  g_autoptr (GHashTable) counts = raw_header_counts (check, text);
  GHashTableIter iter;
  gpointer name, count;
  g_hash_table_iter_init (&iter, counts);
  while (g_hash_table_iter_next (&iter, &name, &count))
    {
      gboolean known = FALSE;
      for (const char *const *n = ack_header_names; *n != NULL; n++)
        known |= g_ascii_strcasecmp (*n, name) == 0;
      if (!known)
        check_fail (check, "ack has a header \"%s\"", (const char *) name);
      if (GPOINTER_TO_UINT (count) > 1)
        check_fail (check, "ack has %u \"%s\" headers", GPOINTER_TO_UINT (count),
                    (const char *) name);
    }
  for (const char *const *n = ack_required_names; *n != NULL; n++)
    if (count_of (counts, *n) != 1)
      check_fail (check, "ack has %u %s headers, not one", count_of (counts, *n), *n);
  /* autoreply.c queues no reply to an address the composer would leave out. */
  if (count_of (counts, "To") != 1 || !ack_would_write_address (customer))
    check_fail (check, "ack to \"%s\" has %u To headers", customer, count_of (counts, "To"));

  GMimeStream *stream = g_mime_stream_mem_new_with_buffer (text, strlen (text));
  GMimeParser *parser = g_mime_parser_new_with_stream (stream);
  GMimeMessage *message = g_mime_parser_construct_message (parser, NULL);
  g_object_unref (parser);
  g_object_unref (stream);
  if (message == NULL)
    {
      check_fail (check, "GMime cannot parse the ack");
      return;
    }
  InternetAddressList *to = g_mime_message_get_to (message);
  if (internet_address_list_length (to) > 1)
    check_fail (check, "ack To has %d addresses", internet_address_list_length (to));
  for (int i = 0; i < internet_address_list_length (to); i++)
    {
      InternetAddress *address = internet_address_list_get_address (to, i);
      if (!INTERNET_ADDRESS_IS_MAILBOX (address))
        {
          check_fail (check, "ack To holds a group");
          continue;
        }
      const char *addr = internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (address));
      if (g_ascii_strcasecmp (addr, customer) != 0)
        check_fail (check, "ack To is \"%s\", not the customer \"%s\"", addr, customer);
      check_text_field (check, "To display name", internet_address_get_name (address));
    }
  InternetAddressList *from = g_mime_message_get_from (message);
  if (internet_address_list_length (from) != 1)
    check_fail (check, "ack From has %d addresses", internet_address_list_length (from));
  else
    {
      InternetAddress *address = internet_address_list_get_address (from, 0);
      if (!INTERNET_ADDRESS_IS_MAILBOX (address)
          || strcmp (internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (address)),
                     queue->addresses[0]) != 0)
        check_fail (check, "ack From is not the queue's address");
      else
        check_text_field (check, "From display name", internet_address_get_name (address));
    }
  static const GMimeAddressType never[] = {
    GMIME_ADDRESS_TYPE_CC, GMIME_ADDRESS_TYPE_BCC, GMIME_ADDRESS_TYPE_REPLY_TO,
    GMIME_ADDRESS_TYPE_SENDER,
  };
  for (gsize i = 0; i < G_N_ELEMENTS (never); i++)
    {
      InternetAddressList *list = g_mime_message_get_addresses (message, never[i]);
      if (list != NULL && internet_address_list_length (list) > 0)
        check_fail (check, "ack has addresses of kind %d", never[i]);
    }
  const char *subject = g_mime_message_get_subject (message);
  check_text_field (check, "Subject", subject);
  g_autofree char *tag = g_strdup_printf ("[%s#%" G_GINT64_FORMAT "]", queue->tag_prefix,
                                          decision->ticket_id);
  if (subject == NULL || strstr (subject, tag) == NULL)
    check_fail (check, "ack Subject lacks %s", tag);
  check_text_field (check, "X-Ticket-Queue",
                    g_mime_object_get_header (GMIME_OBJECT (message), "X-Ticket-Queue"));

  GMimeObject *part = g_mime_message_get_mime_part (message);
  if (!GMIME_IS_PART (part) || GMIME_IS_MULTIPART (part)
      || !g_mime_content_type_is_type (g_mime_object_get_content_type (part), "text", "plain"))
    check_fail (check, "ack is not one text/plain part");
  else
    {
      GMimeStream *out = g_mime_stream_mem_new ();
      g_mime_data_wrapper_write_to_stream (g_mime_part_get_content (GMIME_PART (part)), out);
      GByteArray *bytes = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (out));
      gsize body_length = bytes->len;
      g_autofree char *body = g_strndup ((const char *) bytes->data, body_length);
      g_object_unref (out);
      if (strlen (body) != body_length)
        check_fail (check, "ack body has a NUL");
      guint lines = 0;
      for (const char *c = body; *c != '\0'; c++)
        {
          if (*c == '\r' && c[1] == '\n')
            {
              lines++;
              c++;
            }
          else if (*c == '\r' || *c == '\n')
            check_fail (check, "ack body has a bare %s", *c == '\r' ? "CR" : "LF");
        }
      guint want = template_body_lines (config, decision->autoreply_language,
                                        decision->autoreply_template);
      if (lines != want)
        check_fail (check, "ack body has %u lines where the template has %u", lines, want);
      /* CR LF are the lines counted above; anything else breaking is not. */
      g_autofree char *flat = g_strdelimit (g_strdup (body), "\r\n", ' ');
      const char *why = unsafe_text (flat, TRUE);
      if (why != NULL)
        check_fail (check, "ack body has %s", why);
    }
  g_object_unref (message);
}

/* ---- running one mail ------------------------------------------------------ */

/* The newest outbox mails, at most LIMIT (0: all), newest first. */
static GPtrArray *
outbox (Fixture *fixture, guint limit)
{
  g_autoptr (GError) error = NULL;
  GPtrArray *mails = tm_store_outbox_list (fixture->store, NULL, limit, &error);
  g_assert_no_error (error);
  return mails;
}

/* The id of the newest outbox mail, 0 when there is none. */
static gint64
newest_outbox_id (Fixture *fixture)
{
  g_autoptr (GPtrArray) mails = outbox (fixture, 1);
  return mails->len > 0 ? ((const TmOutboxMail *) g_ptr_array_index (mails, 0))->id : 0;
}

/* Runs RAW through the pipeline (committed) and checks everything; on a
 * failure prints the mail and every problem found. */
static void
run_and_check (Fixture *fixture, const char *raw, gsize length, const char *sender,
               const char *const *recipients, gint64 now)
{
  static const char *const default_recipients[] = { "support@example.test", NULL };
  if (recipients == NULL)
    recipients = default_recipients;
  TmEnvelope envelope = {
    .sender = sender != NULL ? sender : "customer@example.net",
    .recipients = recipients,
    .mta_queue_id = "4XyZ1",
  };
  gint64 before = newest_outbox_id (fixture);
  TmParseOptions options = {
    .fallback_charsets = (const char *const *) fixture->config->fallback_charsets,
  };
  TmMessage *message = tm_message_parse (raw, length, &options);
  g_autoptr (GError) error = NULL;
  TmDecision *decision = tm_pipeline_run (fixture->config, fixture->store, message, &envelope,
                                          now, TRUE, &error);
  tm_message_free (&message);
  Check check = { g_string_new (NULL) };
  if (decision == NULL)
    check_fail (&check, "the pipeline failed: %s", error != NULL ? error->message : "?");
  else
    {
      check_decision (&check, fixture->config, decision, recipients);
      /* Two are enough to see that one mail queued more than one answer. */
      g_autoptr (GPtrArray) after = outbox (fixture, 2);
      guint added = 0;
      for (guint i = 0; i < after->len; i++)
        added += ((const TmOutboxMail *) g_ptr_array_index (after, i))->id > before;
      if (added != (decision->autoreply_send ? 1u : 0u))
        check_fail (&check, "%u outbox mails for autoreply_send %d", added,
                    decision->autoreply_send);
      else if (added == 1)
        check_ack (&check, fixture->config, decision, g_ptr_array_index (after, 0));
    }
  if (check.problems->len > 0)
    {
      /* Escaped byte by byte: a NUL in the mail must show, not end it. */
      GString *escaped = g_string_new (NULL);
      for (gsize i = 0; i < MIN (length, 4000); i++)
        if (raw[i] == '\0')
          g_string_append (escaped, "\\0");
        else
          {
            char one[2] = { raw[i], '\0' };
            g_autofree char *piece = g_strescape (one, NULL);
            g_string_append (escaped, piece);
          }
      g_autofree char *shown = g_string_free (escaped, FALSE);
      g_error ("mail \"%s\"\n%s", shown, check.problems->str);
    }
  g_string_free (check.problems, TRUE);
  tm_decision_free (&decision);
}

/* ---- building hostile mails ------------------------------------------------ */

/* The attacks, as bytes; each is put into every field below. */
typedef struct {
  const char *name;
  const char *bytes;
  gsize length;              /* 0: strlen */
} Payload;

#define LONG_A \
  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define LONG_400 LONG_A LONG_A LONG_A LONG_A LONG_A

static const Payload payloads[] = {
  { "cr", "x\rBcc: victim@evil.example", 0 },
  { "lf", "x\nBcc: victim@evil.example", 0 },
  { "crlf", "x\r\nBcc: victim@evil.example", 0 },
  { "crlf-crlf-body", "x\r\n\r\nInjected body\r\n", 0 },
  { "crlf-space", "x\r\n Bcc: victim@evil.example", 0 },
  { "nul", "x\0Bcc: victim@evil.example", 26 },
  { "nul-crlf", "x\0\r\nBcc: victim@evil.example", 28 },
  { "nel", "x\xc2\x85" "Bcc: victim@evil.example", 0 },
  { "line-separator", "x\xe2\x80\xa8" "Bcc: victim@evil.example", 0 },
  { "paragraph-separator", "x\xe2\x80\xa9" "Bcc: victim@evil.example", 0 },
  { "q-word-crlf", "=?utf-8?q?a=0D=0ABcc:_x@evil.example?=", 0 },
  { "q-word-lf", "=?utf-8?Q?a=0ATo:_x@evil.example?=", 0 },
  { "q-word-nul", "=?utf-8?q?a=00Bcc:_x@evil.example?=", 0 },
  { "b-word-crlf", "=?utf-8?b?DQpCY2M6IHhAZXZpbC5leGFtcGxl?=", 0 }, /* "\r\nBcc: x@evil.example" */
  { "q-word-latin1-nel", "=?iso-8859-1?q?a=85Bcc:_x@evil.example?=", 0 },
  { "q-word-u2028", "=?utf-8?q?a=E2=80=A8Bcc:_x@evil.example?=", 0 },
  { "q-word-split", "=?utf-8?q?a=0D?= =?utf-8?q?=0ABcc:_x@evil.example?=", 0 },
  { "long-line", LONG_400 LONG_400 LONG_400 LONG_400 LONG_400, 0 },
  { "long-words", "word " LONG_400 " " LONG_400 " Bcc: x@evil.example " LONG_400, 0 },
  { "specials", "a\"b<c>d,e;f:g@h(i)j[k]l\\m victim@evil.example, other@evil.example", 0 },
  { "invalid-utf8", "\xff\xfe\xc3(\xed\xa0\x80\r\nBcc: x@evil.example", 0 },
  { "tab-vt-ff-esc", "a\tb\vc\fd\x1b[31me\x7f", 0 },
};

/* How a payload is put into a field. */
typedef enum {
  AS_RAW,                    /* the bytes as they are */
  AS_QUOTED,                 /* inside "...", with \" and \\ escaped */
  AS_Q_WORD,                 /* one =?utf-8?q?...?= word holding all the bytes */
  AS_B_WORD,                 /* one =?utf-8?b?...?= word */
} Encoding;

static void
append_encoded (GString *out, const Payload *payload, Encoding encoding)
{
  gsize length = payload->length != 0 ? payload->length : strlen (payload->bytes);
  const guchar *bytes = (const guchar *) payload->bytes;
  switch (encoding)
    {
    case AS_RAW:
      g_string_append_len (out, payload->bytes, length);
      break;
    case AS_QUOTED:
      g_string_append_c (out, '"');
      for (gsize i = 0; i < length; i++)
        {
          if (bytes[i] == '"' || bytes[i] == '\\')
            g_string_append_c (out, '\\');
          g_string_append_c (out, (char) bytes[i]);
        }
      g_string_append_c (out, '"');
      break;
    case AS_Q_WORD:
      g_string_append (out, "=?utf-8?q?");
      for (gsize i = 0; i < length; i++)
        if (g_ascii_isalnum (bytes[i]))
          g_string_append_c (out, (char) bytes[i]);
        else
          g_string_append_printf (out, "=%02X", bytes[i]);
      g_string_append (out, "?=");
      break;
    case AS_B_WORD:
      {
        g_autofree char *base64 = g_base64_encode (bytes, length);
        g_string_append_printf (out, "=?utf-8?b?%s?=", base64);
      }
      break;
    }
}

/* Where a payload goes: the mail's text with "@@" replaced by the payload. */
typedef struct {
  const char *name;
  const char *headers;       /* the whole header block but Message-ID and Date */
  Encoding encoding;
  const char *sender;        /* envelope sender, NULL: customer@example.net */
} Slot;

#define TO_SUPPORT "To: support@example.test\r\n"
#define FROM_EVE "From: Eve <eve@example.net>\r\n"
#define SUBJECT_PLAIN "Subject: question\r\n"

static const Slot slots[] = {
  { "from-name-raw", "From: @@ <eve@example.net>\r\n" TO_SUPPORT SUBJECT_PLAIN, AS_RAW, NULL },
  { "from-name-quoted", "From: @@ <eve@example.net>\r\n" TO_SUPPORT SUBJECT_PLAIN, AS_QUOTED, NULL },
  { "from-name-q", "From: @@ <eve@example.net>\r\n" TO_SUPPORT SUBJECT_PLAIN, AS_Q_WORD, NULL },
  { "from-name-b", "From: @@ <eve@example.net>\r\n" TO_SUPPORT SUBJECT_PLAIN, AS_B_WORD, NULL },
  { "from-local-quoted", "From: @@@example.net\r\n" TO_SUPPORT SUBJECT_PLAIN, AS_QUOTED, NULL },
  { "from-local-raw", "From: <@@@example.net>\r\n" TO_SUPPORT SUBJECT_PLAIN, AS_RAW, NULL },
  { "from-domain-raw", "From: eve@@@\r\n" TO_SUPPORT SUBJECT_PLAIN, AS_RAW, NULL },
  { "from-second-mailbox", "From: eve@example.net, @@ <x@evil.example>\r\n" TO_SUPPORT
    SUBJECT_PLAIN, AS_Q_WORD, NULL },
  { "from-group", "From: @@: eve@example.net, x@evil.example;\r\n" TO_SUPPORT SUBJECT_PLAIN,
    AS_QUOTED, NULL },
  { "subject-raw", FROM_EVE TO_SUPPORT "Subject: @@\r\n", AS_RAW, NULL },
  { "subject-q", FROM_EVE TO_SUPPORT "Subject: invoice @@ end\r\n", AS_Q_WORD, NULL },
  { "subject-b", FROM_EVE TO_SUPPORT "Subject: @@\r\n", AS_B_WORD, NULL },
  { "subject-tagged", FROM_EVE TO_SUPPORT "Subject: Re: [Ticket#1] @@\r\n", AS_Q_WORD, NULL },
  { "message-id", FROM_EVE TO_SUPPORT SUBJECT_PLAIN "Message-ID: <@@@example.net>\r\n", AS_RAW, NULL },
  { "in-reply-to", FROM_EVE TO_SUPPORT SUBJECT_PLAIN "In-Reply-To: <@@@example.net>\r\n",
    AS_RAW, NULL },
  { "references", FROM_EVE TO_SUPPORT SUBJECT_PLAIN
    "References: <a@example.net> <@@@example.net> <b@example.net>\r\n", AS_RAW, NULL },
  { "references-quoted", FROM_EVE TO_SUPPORT SUBJECT_PLAIN
    "References: <@@@example.net>\r\n", AS_QUOTED, NULL },
  { "content-language", FROM_EVE TO_SUPPORT SUBJECT_PLAIN "Content-Language: @@\r\n", AS_RAW, NULL },
  { "content-language-q", FROM_EVE TO_SUPPORT SUBJECT_PLAIN "Content-Language: @@\r\n",
    AS_Q_WORD, NULL },
  { "form-reply-to-local", "From: Contact form <form@example.test>\r\n" TO_SUPPORT SUBJECT_PLAIN
    "Reply-To: @@@example.net\r\n", AS_QUOTED, "form@example.test" },
  { "form-reply-to-name", "From: Contact form <form@example.test>\r\n" TO_SUPPORT SUBJECT_PLAIN
    "Reply-To: @@ <eve@example.net>\r\n", AS_Q_WORD, "form@example.test" },
  { "to-cc", FROM_EVE "To: support@example.test, @@ <x@evil.example>\r\n"
    "Cc: @@@evil.example\r\n" SUBJECT_PLAIN, AS_QUOTED, NULL },
  { "forged-ticket-headers", FROM_EVE TO_SUPPORT SUBJECT_PLAIN
    "X-Ticket-Team: @@\r\nX-Ticket-ID: 1\r\nX-Ticket-Customer: @@\r\nBcc: x@evil.example\r\n",
    AS_RAW, NULL },
};

/* A whole mail: the slot's headers with the payload, a unique Message-ID
 * (unless the slot writes one), a Date, a blank line, a body. */
static GString *
build_mail (const Slot *slot, const Payload *payload, guint serial)
{
  GString *mail = g_string_new (NULL);
  for (const char *p = slot->headers; *p != '\0'; p++)
    if (p[0] == '@' && p[1] == '@')
      {
        append_encoded (mail, payload, slot->encoding);
        p++;
      }
    else
      g_string_append_c (mail, *p);
  if (strstr (slot->headers, "Message-ID:") == NULL)
    g_string_append_printf (mail, "Message-ID: <named-%u@example.net>\r\n", serial);
  g_string_append (mail, "Date: Mon, 23 Nov 2026 09:00:00 +0300\r\n\r\nHello.\r\n");
  return mail;
}

static void
test_named_cases (Fixture *fixture, gconstpointer data)
{
  guint serial = 0;
  for (gsize s = 0; s < G_N_ELEMENTS (slots); s++)
    for (gsize p = 0; p < G_N_ELEMENTS (payloads); p++)
      {
        GString *mail = build_mail (&slots[s], &payloads[p], ++serial);
        if (g_test_verbose ())
          g_test_message ("%s with %s", slots[s].name, payloads[p].name);
        run_and_check (fixture, mail->str, mail->len, slots[s].sender, NULL,
                       1795000000 + serial);
        g_string_free (mail, TRUE);
      }
  /* The attacks acknowledged at all: most are, or the test proves little. */
  g_autoptr (GPtrArray) mails = outbox (fixture, 0);
  g_assert_cmpuint (mails->len, >, serial / 2);
}

/* One attack in detail: the customer's display name decodes to a line
 * break and a Bcc; the acknowledgement keeps it as text of the one To. */
static void
test_encoded_crlf_display_name (Fixture *fixture, gconstpointer data)
{
  static const char mail[] =
    "From: =?utf-8?q?Eve=0D=0ABcc=3A_victim=40evil.example?= <eve@example.net>\r\n"
    "To: support@example.test\r\nSubject: =?utf-8?q?help=0D=0ABcc:_victim@evil.example?=\r\n"
    "Message-ID: <crlf-name@example.net>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0300\r\n\r\nhi\r\n";
  run_and_check (fixture, mail, sizeof mail - 1, NULL, NULL, 1795000000);
  g_autoptr (GPtrArray) mails = outbox (fixture, 0);
  g_assert_cmpuint (mails->len, ==, 1);
  const TmOutboxMail *ack = g_ptr_array_index (mails, 0);
  g_assert_cmpstr (ack->recipient, ==, "eve@example.net");
  GMimeStream *stream = g_mime_stream_mem_new_with_buffer (ack->data, strlen (ack->data));
  GMimeParser *parser = g_mime_parser_new_with_stream (stream);
  GMimeMessage *message = g_mime_parser_construct_message (parser, NULL);
  g_object_unref (parser);
  g_object_unref (stream);
  InternetAddressList *to = g_mime_message_get_to (message);
  g_assert_cmpint (internet_address_list_length (to), ==, 1);
  InternetAddress *address = internet_address_list_get_address (to, 0);
  g_assert_cmpstr (internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (address)), ==,
                   "eve@example.net");
  g_assert_cmpstr (internet_address_get_name (address), ==, "Eve  Bcc: victim@evil.example");
  g_assert_nonnull (strstr (g_mime_message_get_subject (message), "help  Bcc: victim@evil.example"));
  g_assert_null (g_mime_object_get_header (GMIME_OBJECT (message), "Bcc"));
  g_object_unref (message);
}

/* ---- template values -------------------------------------------------------- */

/* Every placeholder of every shipped template filled with each attack: the
 * subject stays one line without controls, the body keeps its line count. */
static void
test_template_values (Fixture *fixture, gconstpointer data)
{
  const char *const *placeholders = tm_template_placeholders ();
  static const char *const names[] = { "ack", "after-hours", NULL };
  for (const char *const *name = names; *name != NULL; name++)
    {
      const char *const *languages = tm_template_set_languages (fixture->config->templates, *name);
      g_assert_nonnull (languages[0]);
      for (const char *const *language = languages; *language != NULL; language++)
        {
          const TmTemplate *template_
            = tm_template_set_lookup (fixture->config->templates, *language, *name);
          guint want = template_body_lines (fixture->config, *language, *name);
          for (gsize p = 0; p < G_N_ELEMENTS (payloads); p++)
            {
              g_autoptr (GHashTable) values
                = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
              for (const char *const *key = placeholders; *key != NULL; key++)
                g_hash_table_insert (values, (gpointer) *key,
                                     g_strndup (payloads[p].bytes,
                                                payloads[p].length != 0 ? payloads[p].length
                                                                        : strlen (payloads[p].bytes)));
              g_autofree char *subject = NULL;
              g_autofree char *body = NULL;
              tm_template_render (template_, values, &subject, &body);
              if (unsafe_text (subject, FALSE) != NULL)
                g_error ("%s/%s with %s: subject \"%s\" has %s", *language, *name,
                         payloads[p].name, subject, unsafe_text (subject, FALSE));
              guint lines = 0;
              for (const char *c = body; *c != '\0'; c++)
                lines += *c == '\n';
              if (*body != '\0' && !g_str_has_suffix (body, "\n"))
                lines++;
              if (lines != want)
                g_error ("%s/%s with %s: %u body lines, the template has %u", *language, *name,
                         payloads[p].name, lines, want);
              g_autofree char *flat = g_strdelimit (g_strdup (body), "\n", ' ');
              if (unsafe_text (flat, TRUE) != NULL)
                g_error ("%s/%s with %s: body has %s", *language, *name, payloads[p].name,
                         unsafe_text (flat, TRUE));
            }
        }
    }
}

/* ---- header values the milter writes ----------------------------------------- */

/* tm_ack_mail_header_value(), the encoder for the Subject the milter
 * rewrites: one line of printable ASCII that decodes back to the text, with
 * every control or line separator a space - and text that merely looks like
 * an encoded word comes back as typed, not decoded into a line break. */
static void
test_header_value (void)
{
  static const struct { const char *in; const char *out; } cases[] = {
    { "[Ticket#7] plain", "[Ticket#7] plain" },
    { "[Ticket#7] =?utf-8?q?a=0D=0ABcc:_x@evil.example?=",
      "[Ticket#7] =?utf-8?q?a=0D=0ABcc:_x@evil.example?=" },
    { "=?utf-8?b?DQpCY2M6IHhAZXZpbC5leGFtcGxl?=", "=?utf-8?b?DQpCY2M6IHhAZXZpbC5leGFtcGxl?=" },
    { "فاتورة =?utf-8?q?=0A?= لم تصل", "فاتورة =?utf-8?q?=0A?= لم تصل" },
    { "a\r\nBcc: x@evil.example", "a  Bcc: x@evil.example" },
    { "a\xc2\x85" "b\xe2\x80\xa8" "c\xe2\x80\xa9" "d\x1b" "e", "a b c d e" },
    { "  \r\n ", "" },
    { "x\xff", "x\xef\xbf\xbd" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *value = tm_ack_mail_header_value (cases[i].in);
      for (const char *c = value; *c != '\0'; c++)
        g_assert_true (*c >= ' ' && *c <= '~');
      g_autofree char *decoded = g_mime_utils_header_decode_text (NULL, value);
      g_assert_cmpstr (decoded, ==, cases[i].out);
    }
  /* Long text: every encoded word within RFC 2047's 75 characters. */
  GString *long_text = g_string_new (NULL);
  for (int i = 0; i < 200; i++)
    g_string_append (long_text, "درخواست =?x?= ");
  g_autofree char *value = tm_ack_mail_header_value (long_text->str);
  g_auto (GStrv) words = g_strsplit (value, " ", -1);
  for (char **word = words; *word != NULL; word++)
    g_assert_cmpuint (strlen (*word), <=, 75);
  g_autofree char *decoded = g_mime_utils_header_decode_text (NULL, value);
  g_assert_cmpstr (decoded, ==, g_strstrip (long_text->str));
  g_string_free (long_text, TRUE);
}

/* ---- random mixes ----------------------------------------------------------- */

static const char *const fragments[] = {
  "\r", "\n", "\r\n", "\r\n ", "\r\n\t", "\r\n\r\n", "\0", "\xc2\x85", "\xe2\x80\xa8",
  "\xe2\x80\xa9", "Bcc: victim@evil.example", "To: victim@evil.example", "Cc:", "Resent-To: v@evil.example",
  "=?utf-8?q?a=0D=0ABcc:_x@evil.example?=", "=?utf-8?b?DQpCY2M6IHhAZXZpbC5leGFtcGxl?=",
  "=?utf-8?q?=00?=", "=?utf-8?q?=E2=80=A8?=", "=?iso-8859-1?q?=85?=", "=?windows-1256?q?=0A?=",
  "=?utf-8?q?", "?=", "=?", ", ", ";", ":", "<", ">", "\"", "\\", "(", ")", "[", "]", "@", "%",
  "_", "'", "--", " ", "\t", "invoice", "فاتورة", "درخواست", "[Ticket#1]", "[Ticket#99999999]",
  "[Bill#1]", "victim@evil.example", "support@example.test", "frontline@example.test",
  "\xff", "\xc3", "\xed\xa0\x80", "\x1b", "\x7f", "\x0b", "x", "y z", LONG_A, LONG_400,
};
/* Lengths of the fragments, "\0" counted. */
static gsize
fragment_length (const char *fragment)
{
  return *fragment == '\0' ? 1 : strlen (fragment);
}

static void
append_random_text (GString *out, GRand *rand, guint max_fragments)
{
  guint count = (guint) g_rand_int_range (rand, 0, (gint32) max_fragments + 1);
  for (guint i = 0; i < count; i++)
    {
      const char *fragment = fragments[g_rand_int_range (rand, 0, G_N_ELEMENTS (fragments))];
      g_string_append_len (out, fragment, (gssize) fragment_length (fragment));
    }
}

/* A value in one of the encodings a header field might use. */
static void
append_random_value (GString *out, GRand *rand)
{
  GString *text = g_string_new (NULL);
  append_random_text (text, rand, 6);
  Payload payload = { "random", text->str, text->len != 0 ? text->len : 0 };
  if (text->len == 0)
    payload.bytes = "";
  append_encoded (out, &payload, (Encoding) g_rand_int_range (rand, 0, 4));
  g_string_free (text, TRUE);
}

static void
append_random_address (GString *out, GRand *rand)
{
  switch (g_rand_int_range (rand, 0, 6))
    {
    case 0:
      g_string_append_printf (out, "user%u@example.net", g_rand_int_range (rand, 0, 50));
      break;
    case 1:
      append_random_value (out, rand);
      g_string_append_printf (out, " <user%u@example.net>", g_rand_int_range (rand, 0, 50));
      break;
    case 2:
      append_random_value (out, rand);
      g_string_append (out, "@example.net");
      break;
    case 3:
      append_random_value (out, rand);
      g_string_append (out, " <");
      append_random_text (out, rand, 3);
      g_string_append (out, "@example.net>");
      break;
    case 4:
      append_random_value (out, rand);
      g_string_append (out, ": a@example.net, ");
      append_random_value (out, rand);
      g_string_append (out, ";");
      break;
    default:
      append_random_text (out, rand, 5);
      break;
    }
}

static void
test_random_mails (Fixture *fixture, gconstpointer data)
{
  const char *iterations_text = g_getenv ("TM_INJECTION_ITERATIONS");
  const char *seed_text = g_getenv ("TM_INJECTION_SEED");
  guint iterations = iterations_text != NULL ? (guint) g_ascii_strtoull (iterations_text, NULL, 10)
                                             : 1500;
  guint32 seed = seed_text != NULL ? (guint32) g_ascii_strtoull (seed_text, NULL, 10) : 20261123;
  g_test_message ("%u mails from seed %u", iterations, seed);
  GRand *rand = g_rand_new_with_seed (seed);
  static const char *const queue_addresses[] = {
    "support@example.test", "help@example.test", "billing@example.test",
  };
  guint acknowledged = 0;
  for (guint i = 0; i < iterations; i++)
    {
      GString *mail = g_string_new (NULL);
      gboolean form = g_rand_int_range (rand, 0, 8) == 0;
      g_string_append (mail, "From: ");
      if (form)
        g_string_append (mail, "form@example.test");
      else
        append_random_address (mail, rand);
      g_string_append (mail, "\r\n");
      if (form || g_rand_boolean (rand))
        {
          g_string_append (mail, "Reply-To: ");
          append_random_address (mail, rand);
          g_string_append (mail, "\r\n");
        }
      g_string_append (mail, "To: ");
      g_string_append (mail, queue_addresses[g_rand_int_range (rand, 0, 3)]);
      if (g_rand_boolean (rand))
        {
          g_string_append (mail, ", ");
          append_random_address (mail, rand);
        }
      g_string_append (mail, "\r\nSubject: ");
      append_random_value (mail, rand);
      append_random_text (mail, rand, 3);
      g_string_append (mail, "\r\n");
      if (g_rand_int_range (rand, 0, 4) != 0)
        g_string_append_printf (mail, "Message-ID: <random-%u-%u@example.net>\r\n", seed, i);
      else
        {
          g_string_append (mail, "Message-ID: <");
          append_random_text (mail, rand, 4);
          g_string_append (mail, ">\r\n");
        }
      static const char *const extra[] = {
        "In-Reply-To", "References", "Content-Language", "Cc", "Bcc", "X-Ticket-Team",
        "X-Ticket-ID", "Resent-To", "Sender",
      };
      for (gsize e = 0; e < G_N_ELEMENTS (extra); e++)
        if (g_rand_int_range (rand, 0, 3) == 0)
          {
            g_string_append_printf (mail, "%s: ", extra[e]);
            if (g_rand_boolean (rand))
              g_string_append (mail, "<");
            append_random_value (mail, rand);
            if (g_rand_boolean (rand))
              g_string_append (mail, "@example.net>");
            g_string_append (mail, "\r\n");
          }
      g_string_append (mail, "Date: Mon, 23 Nov 2026 09:00:00 +0300\r\n\r\n");
      append_random_text (mail, rand, 8);
      g_string_append (mail, "\r\n");

      const char *recipients[4] = { queue_addresses[g_rand_int_range (rand, 0, 3)], NULL };
      if (g_rand_boolean (rand))
        {
          recipients[1] = "victim@evil.example";
          recipients[2] = g_rand_boolean (rand) ? "frontline@example.test" : NULL;
        }
      const char *sender = form ? "form@example.test"
                           : g_rand_int_range (rand, 0, 10) == 0 ? "" : "bouncer@example.net";
      gint64 before = newest_outbox_id (fixture);
      run_and_check (fixture, mail->str, mail->len, sender, recipients, 1795000000 + i);
      acknowledged += newest_outbox_id (fixture) != before;
      g_string_free (mail, TRUE);
    }
  g_rand_free (rand);
  g_test_message ("%u of %u mails acknowledged", acknowledged, iterations);
  /* Hostile mail still gets through to acknowledgements often enough for the
   * composer to have been tested, not just the refusals. */
  g_assert_cmpuint (acknowledged, >, iterations / 10);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tm_message_library_init ();
  g_test_add ("/injection/pipeline/named-cases", Fixture, NULL, fixture_set_up,
              test_named_cases, fixture_tear_down);
  g_test_add ("/injection/pipeline/encoded-crlf-display-name", Fixture, NULL, fixture_set_up,
              test_encoded_crlf_display_name, fixture_tear_down);
  g_test_add_func ("/injection/header-value/one-line-no-lookalikes", test_header_value);
  g_test_add ("/injection/template/every-placeholder", Fixture, NULL, fixture_set_up,
              test_template_values, fixture_tear_down);
  g_test_add ("/injection/pipeline/random-mails", Fixture, NULL, fixture_set_up,
              test_random_mails, fixture_tear_down);
  return g_test_run ();
}
