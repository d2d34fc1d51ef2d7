/* fuzz-template.c - libFuzzer target: the template parser (template.c), its
 * rendering with hostile values, and the acknowledgement built from the
 * result (ack_mail.c).
 *
 * The input is the text of a template file (templates/LANG/NAME.txt). When
 * it holds a line "%%", what follows is not part of the template: it is
 * split at each 0x1E byte into the values of the placeholders, in the order
 * of tm_template_placeholders(), and those values also become the
 * acknowledgement's customer name, customer address, message ids and
 * references. The template is written as en/ack.txt in a private directory
 * (tmpfs when there is one) and loaded with tm_template_set_load(), as the
 * daemon does at start.
 *
 * A load must fail with a TM_TEMPLATE_ERROR naming the file (one line of
 * valid UTF-8), or give a template that renders:
 *   - subject and body as valid UTF-8, the subject without any control
 *     character, whatever the values;
 *   - no line a value added: the body has as many line feeds (and carriage
 *     returns) with hostile values as with empty ones;
 *   - values cut to their limits: with every value 5000 "A"s the body grows
 *     by exactly 1000 bytes and the subject by 200 per placeholder;
 * and the acknowledgement composed from it (with the input's values, then
 * with a fixed set of injection attempts) is SMTP-ready 7-bit CRLF text that
 * GMime reads back with one From, at most one To (exactly one, the given
 * address, when it is one tm_ack_mail_address_is_plausible() accepts), one
 * Subject, one text part, no Cc or Bcc, and no header other than those
 * ack_mail.h lists, each at most once.
 */
#include <string.h>

#include <gmime/gmime.h>

#include "ack_mail.h"
#include "template.h"
#include "fuzz-common.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

#define BODY_LIMIT 1000
#define SUBJECT_LIMIT 200

static char *tree;
static char *template_path;

/* Values that try to escape: line breaks, NUL-free controls, bidi and line
 * separators, invalid UTF-8, encoded words that decode to a line break,
 * header and MIME lookalikes, and length. */
static const char *const hostile[] = {
  "1042\r\nBcc: victim@example.net",
  "x\nContent-Type: multipart/mixed; boundary=evil\n\n--evil\nContent-Type: text/html\n\n<b>",
  "=?utf-8?q?a=0D=0ABcc:_victim@example.net?=",
  "\xe2\x80\xae\xe2\x80\xa8\xe2\x80\xa9\xc2\x85\x1b[31m\x7f\tend",
  "\xff\xfe\xc0\x80\xed\xa0\x80 invalid",
  "{{ticket.id}} {{",
  "\"Evil\" <victim@example.net>, other@example.net",
  ".\r\n.\r\nMAIL FROM:<x@y>",
  "\xd9\x81\xd8\xa7\xd8\xaa\xd9\x88\xd8\xb1\xd8\xa9 \xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae\xd9\x88",
  "",
  " ",
  "a@b",
};

static void
cleanup (void)
{
  if (template_path != NULL)
    g_unlink (template_path);
  g_clear_pointer (&template_path, g_free);
  g_clear_pointer (&tree, g_free);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_glib ();
  tree = g_build_filename (fuzz_scratch_dir (), "templates", NULL);
  g_autofree char *language_dir = g_build_filename (tree, "en", NULL);
  FUZZ_CHECK (g_mkdir_with_parents (language_dir, 0700) == 0, "cannot make %s", language_dir);
  template_path = g_build_filename (language_dir, "ack.txt", NULL);
  atexit (cleanup);
  return 0;
}

static void
check_subject (const char *subject)
{
  fuzz_check_text ("subject", subject);
  for (const char *p = subject; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      FUZZ_CHECK (!(c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029),
                  "control character U+%04X in the rendered subject", c);
    }
}

static guint
count_byte (const char *text, char byte)
{
  guint count = 0;
  for (; *text != '\0'; text++)
    count += *text == byte;
  return count;
}

static GHashTable *
values_all (const char *value)
{
  GHashTable *values = g_hash_table_new (g_str_hash, g_str_equal);
  for (const char *const *name = tm_template_placeholders (); *name != NULL; name++)
    g_hash_table_insert (values, (gpointer) *name, (gpointer) value);
  return values;
}

/* ---- the composed acknowledgement ------------------------------------- */

static const char *const allowed_headers[] = {
  "From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
  "Auto-Submitted", "X-Auto-Response-Suppress", "X-Loop", "X-Ticket-ID", "X-Ticket-Queue",
  "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Language", NULL,
};

/* The unfolded value of the first field NAME in the header block of TEXT
 * (CRLF line ends), or NULL. */
static char *
raw_field (const char *text, const char *name)
{
  gsize name_length = strlen (name);
  const char *end = strstr (text, "\r\n\r\n");
  for (const char *line = text; line != NULL && line <= end;)
    {
      if (g_ascii_strncasecmp (line, name, name_length) == 0 && line[name_length] == ':')
        {
          GString *value = g_string_new (NULL);
          const char *p = line + name_length + 1;
          for (;;)
            {
              const char *line_end = strstr (p, "\r\n");
              g_string_append_len (value, p, line_end - p);
              if (line_end[2] != ' ' && line_end[2] != '\t')
                break;
              p = line_end + 2;
            }
          return g_string_free (value, FALSE);
        }
      line = strstr (line, "\r\n");
      if (line != NULL)
        line += 2;
    }
  return NULL;
}

static void
count_part (GMimeObject *parent, GMimeObject *part, gpointer user_data)
{
  (*(guint *) user_data)++;
}

static void
check_composed (const TmAckMail *mail)
{
  gsize length = 0;
  g_autofree char *text = tm_ack_mail_compose (mail, &length);
  FUZZ_CHECK (text != NULL && length == strlen (text) && length > 2, "composed length");

  /* SMTP DATA: 7-bit, CRLF only, lines of at most 998 octets, final CRLF. */
  gsize line_length = 0;
  for (gsize i = 0; i < length; i++)
    {
      guchar c = (guchar) text[i];
      FUZZ_CHECK (c < 0x80 && c != 0, "byte 0x%02x in the composed mail", c);
      if (c == '\r')
        {
          FUZZ_CHECK (text[i + 1] == '\n', "bare CR at %zu", i);
          FUZZ_CHECK (line_length <= 998, "a line of %zu octets", line_length);
          line_length = 0;
          i++;
          continue;
        }
      FUZZ_CHECK (c != '\n', "bare LF at %zu", i);
      line_length++;
    }
  FUZZ_CHECK (line_length == 0, "no final CRLF");

  /* The header block, read on the raw text: only the listed fields, once. */
  const char *end = strstr (text, "\r\n\r\n");
  FUZZ_CHECK (end != NULL, "no end of the header block");
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (const char *line = text; line <= end;)
    {
      const char *line_end = strstr (line, "\r\n");
      if (*line != ' ' && *line != '\t')
        {
          const char *colon = memchr (line, ':', (gsize) (line_end - line));
          FUZZ_CHECK (colon != NULL, "header line without a colon: %.*s", (int) (line_end - line),
                      line);
          g_autofree char *name = g_strndup (line, (gsize) (colon - line));
          gboolean known = FALSE;
          for (const char *const *allowed = allowed_headers; *allowed != NULL; allowed++)
            known = known || g_ascii_strcasecmp (name, *allowed) == 0;
          FUZZ_CHECK (known, "unexpected header \"%s\" in the composed mail", name);
          char *lower = g_ascii_strdown (name, -1);
          FUZZ_CHECK (g_hash_table_add (seen, lower), "header \"%s\" twice", name);
        }
      line = line_end + 2;
    }
  FUZZ_CHECK (g_hash_table_contains (seen, "subject") && g_hash_table_contains (seen, "from")
              && g_hash_table_contains (seen, "content-type"), "a header is missing");
  gboolean plausible = tm_ack_mail_address_is_plausible (mail->to_address);
  FUZZ_CHECK (g_hash_table_contains (seen, "to") == plausible,
              "To: %s for the address \"%s\"", plausible ? "missing" : "present",
              mail->to_address);

  GMimeStream *stream = g_mime_stream_mem_new_with_buffer (text, length);
  GMimeParser *parser = g_mime_parser_new_with_stream (stream);
  GMimeMessage *message = g_mime_parser_construct_message (parser, NULL);
  FUZZ_CHECK (message != NULL, "GMime cannot read the composed mail");
  InternetAddressList *to = g_mime_message_get_to (message);
  int to_count = to != NULL ? internet_address_list_length (to) : 0;
  FUZZ_CHECK (to_count == (plausible ? 1 : 0), "%d To addresses for \"%s\"", to_count,
              mail->to_address);
  if (plausible)
    {
      InternetAddress *address = internet_address_list_get_address (to, 0);
      FUZZ_CHECK (INTERNET_ADDRESS_IS_MAILBOX (address), "To is not a mailbox");
      /* GMime shows an IDN domain ("xn--...") decoded, and its own ASCII
       * form of that need not be the one written (punycode has more than
       * one spelling); the raw field must hold the address as given. */
      const char *addr
        = internet_address_mailbox_get_idn_addr (INTERNET_ADDRESS_MAILBOX (address));
      g_autofree char *lower = g_ascii_strdown (mail->to_address, -1);
      FUZZ_CHECK (g_ascii_strcasecmp (addr, mail->to_address) == 0
                  || strstr (lower, "xn--") != NULL,
                  "To <%s>, given <%s>", addr, mail->to_address);
      g_autofree char *field = raw_field (text, "To");
      FUZZ_CHECK (field != NULL && strstr (field, mail->to_address) != NULL,
                  "the To field \"%s\" does not hold <%s>", field, mail->to_address);
    }
  FUZZ_CHECK (internet_address_list_length (g_mime_message_get_from (message)) == 1,
              "not one From");
  InternetAddressList *cc = g_mime_message_get_cc (message);
  InternetAddressList *bcc = g_mime_message_get_bcc (message);
  FUZZ_CHECK ((cc == NULL || internet_address_list_length (cc) == 0)
              && (bcc == NULL || internet_address_list_length (bcc) == 0), "Cc or Bcc");
  const char *subject = g_mime_message_get_subject (message);
  FUZZ_CHECK (subject == NULL || strpbrk (subject, "\r\n") == NULL,
              "the subject reads back with a line break");
  guint parts = 0;
  g_mime_message_foreach (message, count_part, &parts);
  FUZZ_CHECK (parts == 1 && !GMIME_IS_MULTIPART (g_mime_message_get_mime_part (message)),
              "%u MIME parts", parts);
  g_object_unref (message);
  g_object_unref (parser);
  g_object_unref (stream);
}

static void
compose_variants (const char *subject, const char *body, const char *const *fields,
                  guint field_count)
{
  /* From the input's values: name, address, in-reply-to, references... */
  const char *name = field_count > 0 ? fields[0] : NULL;
  const char *address = field_count > 1 ? fields[1] : "customer@example.net";
  const char *in_reply_to = field_count > 2 ? fields[2] : NULL;
  const char *language = field_count > 3 ? fields[3] : "ar";
  const char *references[] = {
    field_count > 4 ? fields[4] : "ref-1@example.net",
    field_count > 5 ? fields[5] : "ref-2@example.net",
    NULL,
  };
  TmAckMail mail = {
    .from_name = field_count > 6 ? fields[6] : "الدعم الفني",
    .from_address = "support@example.test",
    .to_name = name,
    .to_address = address,
    .subject = subject,
    .body = body,
    .language = language,
    .message_id = field_count > 7 ? fields[7] : "ticket-7.ack.0123@example.test",
    .in_reply_to = in_reply_to,
    .references = references,
    .date = field_count > 8 ? (gint64) strlen (fields[8]) * G_GINT64_CONSTANT (86400000)
                            : G_GINT64_CONSTANT (1795413600),
    .ticket_id = 7,
    .queue_name = field_count > 9 ? fields[9] : "support",
    .auto_submitted = field_count > 10 ? fields[10] : NULL,
  };
  check_composed (&mail);

  /* The fixed attempts, each in every field at once. */
  for (guint i = 0; i < G_N_ELEMENTS (hostile); i++)
    {
      const char *refs[] = { hostile[i], hostile[(i + 1) % G_N_ELEMENTS (hostile)], NULL };
      TmAckMail evil = mail;
      evil.from_name = hostile[i];
      evil.to_name = hostile[i];
      evil.to_address = hostile[i];
      evil.in_reply_to = hostile[i];
      evil.references = refs;
      evil.language = hostile[i];
      evil.message_id = hostile[i];
      evil.queue_name = hostile[i];
      evil.auto_submitted = hostile[i];
      check_composed (&evil);
    }
  TmAckMail plain = mail;
  plain.to_address = "customer@example.net";
  plain.to_name = hostile[0];
  check_composed (&plain);
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  const char *input = (const char *) data;
  gsize template_length = size;
  g_auto (GStrv) fields = NULL;
  const char *split = size >= 4 ? g_strstr_len (input, (gssize) size, "\n%%\n") : NULL;
  if (split != NULL)
    {
      template_length = (gsize) (split - input) + 1;
      /* The values as C strings: a NUL ends one early, as it would in a mail. */
      g_autofree char *rest = g_strndup (split + 4, size - template_length - 3);
      fields = g_strsplit (rest, "\x1e", 32);
    }
  else
    fields = g_new0 (char *, 1);
  guint field_count = g_strv_length (fields);

  fuzz_write_file (template_path, input, template_length);
  GError *error = NULL;
  TmTemplateSet *set = tm_template_set_load (tree, &error);
  if (set == NULL)
    {
      FUZZ_CHECK (error != NULL && error->domain == TM_TEMPLATE_ERROR, "load error domain");
      fuzz_check_text ("error message", error->message);
      FUZZ_CHECK (strchr (error->message, '\n') == NULL, "error of several lines: %s",
                  error->message);
      FUZZ_CHECK (strstr (error->message, template_path) != NULL,
                  "error does not name the file: %s", error->message);
      g_error_free (error);
      return 0;
    }
  const TmTemplate *template_ = tm_template_set_lookup (set, "en", "ack");
  FUZZ_CHECK (template_ != NULL, "loaded but en/ack missing");
  FUZZ_CHECK (strcmp (tm_template_path (template_), template_path) == 0, "template path");
  const char *const *languages = tm_template_set_languages (set, "ack");
  FUZZ_CHECK (languages != NULL && g_strv_length ((char **) languages) == 1
              && strcmp (languages[0], "en") == 0, "languages of ack");

  /* Empty values: what the template itself writes. */
  char *empty_subject, *empty_body;
  tm_template_render (template_, NULL, &empty_subject, &empty_body);
  check_subject (empty_subject);
  fuzz_check_text ("body", empty_body);
  guint lines = count_byte (empty_body, '\n');
  guint returns = count_byte (empty_body, '\r');

  /* One character per value: how many placeholders each part has. */
  g_autoptr (GHashTable) one = values_all ("A");
  char *one_subject, *one_body;
  tm_template_render (template_, one, &one_subject, &one_body);
  gsize subject_slots = strlen (one_subject) - strlen (empty_subject);
  gsize body_slots = strlen (one_body) - strlen (empty_body);

  g_autofree char *long_value = g_strnfill (5000, 'A');
  g_autoptr (GHashTable) longest = values_all (long_value);
  char *long_subject, *long_body;
  tm_template_render (template_, longest, &long_subject, &long_body);
  FUZZ_CHECK (strlen (long_subject) == strlen (empty_subject) + subject_slots * SUBJECT_LIMIT,
              "subject of %zu bytes with %zu placeholders cut at %d", strlen (long_subject),
              subject_slots, SUBJECT_LIMIT);
  FUZZ_CHECK (strlen (long_body) == strlen (empty_body) + body_slots * BODY_LIMIT,
              "body of %zu bytes with %zu placeholders cut at %d", strlen (long_body),
              body_slots, BODY_LIMIT);

  /* The input's values, then each fixed attempt in every placeholder. */
  g_autoptr (GHashTable) given = g_hash_table_new (g_str_hash, g_str_equal);
  guint index = 0;
  for (const char *const *name = tm_template_placeholders (); *name != NULL; name++, index++)
    if (index < field_count)
      g_hash_table_insert (given, (gpointer) *name, fields[index]);
  for (guint round = 0; round <= G_N_ELEMENTS (hostile); round++)
    {
      g_autoptr (GHashTable) values = round == 0 ? g_hash_table_ref (given)
                                                 : values_all (hostile[round - 1]);
      char *subject, *body;
      tm_template_render (template_, values, &subject, &body);
      check_subject (subject);
      fuzz_check_text ("body", body);
      FUZZ_CHECK (count_byte (body, '\n') == lines && count_byte (body, '\r') == returns,
                  "a value added a line break to the body");
      if (round == 0)
        compose_variants (subject, body, (const char *const *) fields, field_count);
      g_free (subject);
      g_free (body);
    }

  g_free (empty_subject);
  g_free (empty_body);
  g_free (one_subject);
  g_free (one_body);
  g_free (long_subject);
  g_free (long_body);
  tm_template_set_free (&set);
  FUZZ_CHECK (set == NULL, "tm_template_set_free did not clear the pointer");
  return 0;
}
