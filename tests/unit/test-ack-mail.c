/* test-ack-mail.c - composing the desk's own mails: every header once with
 * the right value, Arabic and Persian text surviving a round trip through
 * GMime's parser, wire format fit for SMTP DATA, and no way for a field from
 * a customer's mail to add a header or a part. */
#include "ack_mail.h"

#include <string.h>

#include <gmime/gmime.h>

#define ARABIC_SUBJECT "تم استلام طلبك: الفاتورة لم تصل"
#define PERSIAN_SUBJECT "درخواست شما دریافت شد: می‌خواهم صورت‌حساب را ببینم"
#define DATE_UNIX G_GINT64_CONSTANT (1700000000)

static const char *const sample_references[] = {
  "first@customer.example", "second@customer.example", NULL
};

static TmAckMail
sample_mail (void)
{
  TmAckMail mail = {
    .from_name = "الدعم الفني",
    .from_address = "support@desk.example",
    .to_name = "فاطمه رضایی",
    .to_address = "fatemeh@customer.example",
    .subject = "[Ticket#1042] " ARABIC_SUBJECT,
    .body = "مرحبا،\nشكرا لرسالتك.\n",
    .language = "ar",
    .message_id = "ticket-1042.ack.0123456789abcdef@desk.example",
    .in_reply_to = "third@customer.example",
    .references = sample_references,
    .date = DATE_UNIX,
    .ticket_id = 1042,
    .queue_name = "support",
    .auto_submitted = NULL,
  };
  return mail;
}

/* What SMTP DATA and RFC 5322 need of the text: 7-bit, no NUL, CRLF and
 * nothing else as line end, lines of at most 998 octets, a final CRLF. */
static void
assert_wire_format (const char *text, gsize length)
{
  g_assert_cmpuint (length, ==, strlen (text));
  g_assert_cmpuint (length, >, 2);
  gsize line_length = 0;
  for (gsize i = 0; i < length; i++)
    {
      guchar c = (guchar) text[i];
      g_assert_cmpuint (c, <, 0x80);
      if (c == '\r')
        {
          g_assert_cmpint (text[i + 1], ==, '\n');
          g_assert_cmpuint (line_length, <=, 998);
          line_length = 0;
          i++;
          continue;
        }
      g_assert_cmpint (c, !=, '\n');
      line_length++;
    }
  g_assert_cmpuint (line_length, ==, 0);
}

static char *
compose_checked (const TmAckMail *mail)
{
  gsize length = 0;
  char *text = tm_ack_mail_compose (mail, &length);
  g_assert_nonnull (text);
  assert_wire_format (text, length);
  return text;
}

static GMimeMessage *
parse (const char *text)
{
  GMimeStream *stream = g_mime_stream_mem_new_with_buffer (text, strlen (text));
  GMimeParser *parser = g_mime_parser_new_with_stream (stream);
  GMimeMessage *message = g_mime_parser_construct_message (parser, NULL);
  g_object_unref (parser);
  g_object_unref (stream);
  g_assert_nonnull (message);
  return message;
}

/* How many header fields called NAME the header block of TEXT holds,
 * counted on the raw text so that GMime's parser cannot hide a duplicate. */
static guint
raw_header_count (const char *text, const char *name)
{
  gsize name_length = strlen (name);
  guint count = 0;
  const char *end = strstr (text, "\r\n\r\n");
  g_assert_nonnull (end);
  for (const char *line = text; line <= end; line = strstr (line, "\r\n") + 2)
    if (g_ascii_strncasecmp (line, name, name_length) == 0 && line[name_length] == ':')
      count++;
  return count;
}

/* The one text part's content, transfer encoding undone. */
static char *
decoded_body (GMimeMessage *message)
{
  GMimeObject *top = g_mime_message_get_mime_part (message);
  g_assert_true (GMIME_IS_PART (top));
  g_assert_false (GMIME_IS_MULTIPART (top));
  GMimeDataWrapper *content = g_mime_part_get_content (GMIME_PART (top));
  g_assert_nonnull (content);
  GMimeStream *out = g_mime_stream_mem_new ();
  g_assert_cmpint (g_mime_data_wrapper_write_to_stream (content, out), >=, 0);
  GByteArray *bytes = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (out));
  char *body = bytes->len > 0 ? g_strndup ((const char *) bytes->data, bytes->len) : g_strdup ("");
  g_object_unref (out);
  return body;
}

static void
count_part (GMimeObject *parent, GMimeObject *part, gpointer user_data)
{
  (*(guint *) user_data)++;
}

/* The defences every composed mail must show, whatever went in. */
static void
assert_single_safe_mail (const char *text, GMimeMessage *message)
{
  g_assert_cmpuint (raw_header_count (text, "Bcc"), ==, 0);
  g_assert_cmpuint (raw_header_count (text, "Cc"), ==, 0);
  g_assert_cmpuint (raw_header_count (text, "Subject"), ==, 1);
  g_assert_cmpuint (raw_header_count (text, "From"), <=, 1);
  g_assert_cmpuint (raw_header_count (text, "To"), <=, 1);
  g_assert_cmpuint (raw_header_count (text, "Content-Type"), ==, 1);
  InternetAddressList *bcc = g_mime_message_get_bcc (message);
  g_assert_true (bcc == NULL || internet_address_list_length (bcc) == 0);
  guint parts = 0;
  g_mime_message_foreach (message, count_part, &parts);
  g_assert_cmpuint (parts, ==, 1);
  g_assert_false (GMIME_IS_MULTIPART (g_mime_message_get_mime_part (message)));
  g_assert_cmpuint (internet_address_list_length (g_mime_message_get_to (message)), <=, 1);
}

/* The msg-ids of header NAME (References, In-Reply-To), for
 * g_mime_references_free(); an absent header gives an empty list. */
static GMimeReferences *
parsed_references (GMimeMessage *message, const char *name)
{
  const char *value = g_mime_object_get_header (GMIME_OBJECT (message), name);
  GMimeReferences *references = g_mime_references_parse (NULL, value != NULL ? value : "");
  return references != NULL ? references : g_mime_references_new ();
}

/* Every RFC 2047 word in the header block of TEXT is at most 75 characters. */
static void
assert_encoded_words_short (const char *text)
{
  const char *end = strstr (text, "\r\n\r\n");
  for (const char *word = strstr (text, "=?"); word != NULL && word < end;
       word = strstr (word + 2, "=?"))
    {
      /* "=?charset?X?" then the text up to "?=" */
      const char *question = strchr (word + 2, '?');
      g_assert_nonnull (question);
      const char *close = strstr (question + 3, "?=");
      g_assert_nonnull (close);
      g_assert_cmpint (close + 2 - word, <=, 75);
      word = close;
    }
}

/* g_assert_cmpstr for texts too long to print whole on failure. */
static void
assert_same_text (const char *got, const char *want)
{
  g_assert_nonnull (got);
  gsize at = 0;
  while (got[at] != '\0' && got[at] == want[at])
    at++;
  if (got[at] != want[at])
    g_error ("texts differ at byte %" G_GSIZE_FORMAT " (lengths %" G_GSIZE_FORMAT
             " and %" G_GSIZE_FORMAT "): \"%.40s\" where \"%.40s\" was expected",
             at, strlen (got), strlen (want), got + at, want + at);
}

static const char *
only_address (InternetAddressList *list, const char **name)
{
  g_assert_cmpint (internet_address_list_length (list), ==, 1);
  InternetAddress *address = internet_address_list_get_address (list, 0);
  g_assert_true (INTERNET_ADDRESS_IS_MAILBOX (address));
  if (name != NULL)
    *name = internet_address_get_name (address);
  return internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (address));
}

static void
test_every_header_once (void)
{
  TmAckMail mail = sample_mail ();
  g_autofree char *text = compose_checked (&mail);
  const char *once[] = {
    "From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
    "Auto-Submitted", "X-Auto-Response-Suppress", "X-Loop", "X-Ticket-ID",
    "X-Ticket-Queue", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    "Content-Language",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (once); i++)
    if (raw_header_count (text, once[i]) != 1)
      g_error ("%s: %u times in\n%s", once[i], raw_header_count (text, once[i]), text);

  GMimeMessage *message = parse (text);
  GMimeObject *object = GMIME_OBJECT (message);
  const char *name = NULL;
  g_assert_cmpstr (only_address (g_mime_message_get_from (message), &name), ==,
                   "support@desk.example");
  g_assert_cmpstr (name, ==, "الدعم الفني");
  g_assert_cmpstr (only_address (g_mime_message_get_to (message), &name), ==,
                   "fatemeh@customer.example");
  g_assert_cmpstr (name, ==, "فاطمه رضایی");
  g_assert_cmpstr (g_mime_message_get_subject (message), ==,
                   "[Ticket#1042] " ARABIC_SUBJECT);
  GDateTime *date = g_mime_message_get_date (message);
  g_assert_nonnull (date);
  g_assert_cmpint (g_date_time_to_unix (date), ==, DATE_UNIX);
  g_assert_cmpstr (g_mime_message_get_message_id (message), ==,
                   "ticket-1042.ack.0123456789abcdef@desk.example");
  GMimeReferences *in_reply_to = parsed_references (message, "In-Reply-To");
  g_assert_cmpint (g_mime_references_length (in_reply_to), ==, 1);
  g_assert_cmpstr (g_mime_references_get_message_id (in_reply_to, 0), ==,
                   "third@customer.example");
  g_mime_references_free (in_reply_to);
  GMimeReferences *references = parsed_references (message, "References");
  g_assert_cmpint (g_mime_references_length (references), ==, 3);
  g_assert_cmpstr (g_mime_references_get_message_id (references, 0), ==, "first@customer.example");
  g_assert_cmpstr (g_mime_references_get_message_id (references, 1), ==, "second@customer.example");
  g_assert_cmpstr (g_mime_references_get_message_id (references, 2), ==, "third@customer.example");
  g_mime_references_free (references);
  g_assert_cmpstr (g_mime_object_get_header (object, "Auto-Submitted"), ==, "auto-replied");
  g_assert_cmpstr (g_mime_object_get_header (object, "X-Auto-Response-Suppress"), ==, "All");
  g_assert_cmpstr (g_mime_object_get_header (object, "X-Loop"), ==, "support@desk.example");
  g_assert_cmpstr (g_mime_object_get_header (object, "X-Ticket-ID"), ==, "1042");
  g_assert_cmpstr (g_mime_object_get_header (object, "X-Ticket-Queue"), ==, "support");
  g_assert_cmpstr (g_mime_object_get_header (object, "MIME-Version"), ==, "1.0");

  GMimeObject *part = g_mime_message_get_mime_part (message);
  GMimeContentType *type = g_mime_object_get_content_type (part);
  g_assert_true (g_mime_content_type_is_type (type, "text", "plain"));
  g_assert_cmpstr (g_mime_content_type_get_parameter (type, "charset"), ==, "utf-8");
  g_assert_cmpstr (g_mime_object_get_header (part, "Content-Language"), ==, "ar");
  GMimeContentEncoding encoding = g_mime_part_get_content_encoding (GMIME_PART (part));
  g_assert_true (encoding == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE
                 || encoding == GMIME_CONTENT_ENCODING_BASE64);
  assert_single_safe_mail (text, message);
  g_object_unref (message);
}

static void
test_optional_fields (void)
{
  TmAckMail mail = sample_mail ();
  mail.from_name = NULL;
  mail.to_name = NULL;
  mail.language = NULL;
  mail.in_reply_to = NULL;
  mail.references = NULL;
  mail.auto_submitted = "auto-generated";
  g_autofree char *text = compose_checked (&mail);
  g_assert_cmpuint (raw_header_count (text, "In-Reply-To"), ==, 0);
  g_assert_cmpuint (raw_header_count (text, "References"), ==, 0);
  g_assert_cmpuint (raw_header_count (text, "Content-Language"), ==, 0);
  g_assert_cmpuint (raw_header_count (text, "Auto-Submitted"), ==, 1);
  GMimeMessage *message = parse (text);
  const char *name = "unset";
  g_assert_cmpstr (only_address (g_mime_message_get_from (message), &name), ==,
                   "support@desk.example");
  g_assert_true (name == NULL || *name == '\0');
  g_assert_cmpstr (only_address (g_mime_message_get_to (message), &name), ==,
                   "fatemeh@customer.example");
  g_assert_true (name == NULL || *name == '\0');
  g_assert_nonnull (strstr (text, "\r\nTo: fatemeh@customer.example\r\n"));
  g_assert_cmpstr (g_mime_object_get_header (GMIME_OBJECT (message), "Auto-Submitted"), ==,
                   "auto-generated");
  g_object_unref (message);
}

static void
test_subject_round_trip (void)
{
  char long_persian[4096] = "";
  for (int i = 0; i < 12; i++)
    g_strlcat (long_persian, PERSIAN_SUBJECT " ", sizeof long_persian);
  g_strchomp (long_persian);
  char long_word[1500];
  memset (long_word, 'x', sizeof long_word - 1);
  long_word[sizeof long_word - 1] = '\0';
  const char *subjects[] = {
    ARABIC_SUBJECT,
    PERSIAN_SUBJECT,
    "Re: [Ticket#7] " PERSIAN_SUBJECT " / invoice 2024-03",
    "plain English: where is my order?",
    "ZWNJ alone: می‌شود، نمی‌دانم",
    "looks encoded =?utf-8?q?Bcc:_x?= but is text",
    long_persian,
    long_word,
  };
  for (gsize i = 0; i < G_N_ELEMENTS (subjects); i++)
    {
      TmAckMail mail = sample_mail ();
      mail.subject = subjects[i];
      g_autofree char *text = compose_checked (&mail);
      GMimeMessage *message = parse (text);
      assert_same_text (g_mime_message_get_subject (message), subjects[i]);
      assert_encoded_words_short (text);
      assert_single_safe_mail (text, message);
      g_object_unref (message);
    }
}

/* Encoded words must split the text between characters and in a way the
 * parser joins back: try every length of text made of 1-, 2-, 3- and
 * 4-byte characters, including runs that leave no base64-friendly split. */
static void
test_encoded_word_boundaries (void)
{
  const char *alphabets[] = {
    "ب", "ب‌", "aب", "a‌", "a漢", "ب😀", "a b ", "😀", "می‌خواهم ",
  };
  for (gsize a = 0; a < G_N_ELEMENTS (alphabets); a++)
    for (int repeat = 1; repeat <= 40; repeat++)
      {
        GString *text = g_string_new (a == 3 || a == 4 ? "x" : "");
        for (int i = 0; i < repeat; i++)
          g_string_append (text, alphabets[a]);
        g_autofree char *want = g_strstrip (g_strdup (text->str));
        TmAckMail mail = sample_mail ();
        mail.subject = text->str;
        mail.to_name = text->str;
        mail.queue_name = text->str;
        g_autofree char *raw = compose_checked (&mail);
        assert_encoded_words_short (raw);
        GMimeMessage *message = parse (raw);
        assert_same_text (g_mime_message_get_subject (message), want);
        const char *name = NULL;
        only_address (g_mime_message_get_to (message), &name);
        assert_same_text (name, want);
        assert_same_text (g_mime_object_get_header (GMIME_OBJECT (message), "X-Ticket-Queue"),
                          want);
        g_object_unref (message);
        g_string_free (text, TRUE);
      }
}

static void
test_body_round_trip (void)
{
  GString *long_english = g_string_new (NULL);
  for (int i = 0; i < 300; i++)
    g_string_append (long_english, "word ");
  g_string_append (long_english, "\n");
  GString *long_arabic = g_string_new (NULL);
  for (int i = 0; i < 400; i++)
    g_string_append (long_arabic, "شكرا");
  g_string_append (long_arabic, "\nend\n");
  GString *unbroken = g_string_new (NULL);
  for (int i = 0; i < 2500; i++)
    g_string_append_c (unbroken, 'a' + i % 26);
  g_string_append_c (unbroken, '\n');
  struct { const char *in; const char *out; } cases[] = {
    { "مرحبا، تم استلام رسالتك.\nرقم التذكرة 1042.\n",
      "مرحبا، تم استلام رسالتك.\r\nرقم التذكرة 1042.\r\n" },
    { "سلام، درخواست شما ثبت شد و به‌زودی پاسخ می‌دهیم.\r\n",
      "سلام، درخواست شما ثبت شد و به‌زودی پاسخ می‌دهیم.\r\n" },
    { "Hello,\n\nwe received your mail.\n-- \nThe desk\n",
      "Hello,\r\n\r\nwe received your mail.\r\n-- \r\nThe desk\r\n" },
    { "From the desk:\nFrom here on\n.\n..\nend\n",
      "From the desk:\r\nFrom here on\r\n.\r\n..\r\nend\r\n" },
    { "trailing spaces   \ntab\tinside\t\n", "trailing spaces   \r\ntab\tinside\t\r\n" },
    { "mixed\r\nline\nends\r\n", "mixed\r\nline\r\nends\r\n" },
    { "English, عربي، فارسی‌ها\n", "English, عربي، فارسی‌ها\r\n" },
    { "=?utf-8?q?x?= and = signs =3D\n", "=?utf-8?q?x?= and = signs =3D\r\n" },
  };
  const char *generated[][2] = {
    { long_english->str, NULL }, { long_arabic->str, NULL }, { unbroken->str, NULL },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases) + G_N_ELEMENTS (generated); i++)
    {
      gboolean fixed = i < G_N_ELEMENTS (cases);
      const char *in = fixed ? cases[i].in : generated[i - G_N_ELEMENTS (cases)][0];
      g_autofree char *want = NULL;
      if (fixed)
        want = g_strdup (cases[i].out);
      else
        {
          g_auto (GStrv) lines = g_strsplit (in, "\n", -1);
          want = g_strjoinv ("\r\n", lines);
        }
      TmAckMail mail = sample_mail ();
      mail.body = in;
      g_autofree char *text = compose_checked (&mail);
      GMimeMessage *message = parse (text);
      g_autofree char *body = decoded_body (message);
      assert_same_text (body, want);
      assert_single_safe_mail (text, message);
      g_object_unref (message);
    }
  g_string_free (long_english, TRUE);
  g_string_free (long_arabic, TRUE);
  g_string_free (unbroken, TRUE);
}

static void
test_body_final_line_break_added (void)
{
  TmAckMail mail = sample_mail ();
  mail.body = "no line break at the end: پایان";
  g_autofree char *text = compose_checked (&mail);
  GMimeMessage *message = parse (text);
  g_autofree char *body = decoded_body (message);
  g_assert_cmpstr (body, ==, "no line break at the end: پایان\r\n");
  g_object_unref (message);
}

static void
test_body_controls (void)
{
  TmAckMail mail = sample_mail ();
  mail.body = "bell\a escape\x1b lone\rcr del\x7f form\ffeed\nc1 \xc2\x85 end\n";
  g_autofree char *text = compose_checked (&mail);
  GMimeMessage *message = parse (text);
  g_autofree char *body = decoded_body (message);
  g_assert_cmpstr (body, ==, "bell  escape  lone cr del  form feed\r\nc1   end\r\n");
  g_object_unref (message);
}

static void
test_references_keep_last_twenty (void)
{
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  for (int i = 0; i < 30; i++)
    g_ptr_array_add (ids, g_strdup_printf ("ref-%02d.%s@customer.example", i,
                                           "0123456789abcdefghijklmnopqrstuvwxyz"));
  g_ptr_array_add (ids, g_strdup ("bad id with spaces@x"));
  g_ptr_array_add (ids, NULL);
  TmAckMail mail = sample_mail ();
  mail.references = (const char *const *) ids->pdata;
  g_autofree char *text = compose_checked (&mail);
  g_assert_cmpuint (raw_header_count (text, "References"), ==, 1);
  GMimeMessage *message = parse (text);
  GMimeReferences *references = parsed_references (message, "References");
  g_assert_cmpint (g_mime_references_length (references), ==, 21);
  for (int i = 0; i < 20; i++)
    g_assert_cmpstr (g_mime_references_get_message_id (references, i), ==,
                     g_ptr_array_index (ids, i + 10));
  g_assert_cmpstr (g_mime_references_get_message_id (references, 20), ==,
                   "third@customer.example");
  g_mime_references_free (references);
  g_object_unref (message);

  /* The customer's own Message-ID alone is a thread of one. */
  mail.references = NULL;
  g_autofree char *alone = compose_checked (&mail);
  message = parse (alone);
  references = parsed_references (message, "References");
  g_assert_cmpint (g_mime_references_length (references), ==, 1);
  g_assert_cmpstr (g_mime_references_get_message_id (references, 0), ==,
                   "third@customer.example");
  g_mime_references_free (references);
  g_object_unref (message);
}

static void
test_injection_in_text_fields (void)
{
  const char *attacks[] = {
    "x\r\nBcc: victim@example.com",
    "x\nBcc: victim@example.com",
    "x\rBcc: victim@example.com",
    "x\r\n\r\n--boundary\r\nContent-Type: text/html\r\n\r\n<b>",
    "x\r\nContent-Type: multipart/mixed; boundary=b\r\n",
    "x\r\n To: victim@example.com",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (attacks); i++)
    {
      TmAckMail mail = sample_mail ();
      mail.subject = attacks[i];
      mail.to_name = attacks[i];
      mail.from_name = attacks[i];
      mail.queue_name = attacks[i];
      mail.auto_submitted = attacks[i];
      mail.language = attacks[i];
      g_autofree char *text = compose_checked (&mail);
      GMimeMessage *message = parse (text);
      assert_single_safe_mail (text, message);
      g_assert_cmpuint (raw_header_count (text, "To"), ==, 1);
      g_assert_cmpuint (raw_header_count (text, "From"), ==, 1);
      g_assert_cmpuint (raw_header_count (text, "Content-Language"), ==, 0);
      const char *subject = g_mime_message_get_subject (message);
      g_assert_null (strchr (subject, '\r'));
      g_assert_null (strchr (subject, '\n'));
      g_assert_true (g_str_has_prefix (subject, "x "));
      const char *name = NULL;
      g_assert_cmpstr (only_address (g_mime_message_get_to (message), &name), ==,
                       "fatemeh@customer.example");
      g_assert_nonnull (name);
      g_assert_null (strpbrk (name, "\r\n"));
      g_assert_cmpstr (only_address (g_mime_message_get_from (message), NULL), ==,
                       "support@desk.example");
      g_autofree char *body = decoded_body (message);
      g_assert_cmpstr (body, ==, "مرحبا،\r\nشكرا لرسالتك.\r\n");
      g_object_unref (message);
    }

  /* The first attack exactly: the text stays, on one line, as the subject. */
  TmAckMail mail = sample_mail ();
  mail.subject = attacks[0];
  mail.to_name = attacks[0];
  g_autofree char *text = compose_checked (&mail);
  GMimeMessage *message = parse (text);
  g_assert_cmpstr (g_mime_message_get_subject (message), ==, "x  Bcc: victim@example.com");
  const char *name = NULL;
  only_address (g_mime_message_get_to (message), &name);
  g_assert_cmpstr (name, ==, "x  Bcc: victim@example.com");
  g_object_unref (message);
}

static void
test_control_characters_become_spaces (void)
{
  TmAckMail mail = sample_mail ();
  mail.subject = "a\tb\x01" "c\x1b[31md\x7f" "e\xc2\x85" "f\xe2\x80\xa8g";
  mail.to_name = "n\x02m\x1f";
  g_autofree char *text = compose_checked (&mail);
  GMimeMessage *message = parse (text);
  g_assert_cmpstr (g_mime_message_get_subject (message), ==, "a b c [31md e f g");
  const char *name = NULL;
  only_address (g_mime_message_get_to (message), &name);
  g_assert_cmpstr (name, ==, "n m");
  assert_single_safe_mail (text, message);
  g_object_unref (message);
}

static void
test_invalid_utf8_becomes_replacement (void)
{
  TmAckMail mail = sample_mail ();
  mail.subject = "bad \xff\xfe here \xd8";
  mail.to_name = "\xc3\x28name";
  mail.from_name = "desk \xed\xa0\x80";    /* an encoded surrogate */
  mail.queue_name = "q\x80";
  mail.body = "body \xe2\x82 end\n\xf0\x9f\n";
  g_autofree char *text = compose_checked (&mail);
  GMimeMessage *message = parse (text);
  g_assert_cmpstr (g_mime_message_get_subject (message), ==,
                   "bad \xef\xbf\xbd\xef\xbf\xbd here \xef\xbf\xbd");
  const char *name = NULL;
  only_address (g_mime_message_get_to (message), &name);
  g_assert_cmpstr (name, ==, "\xef\xbf\xbd(name");
  only_address (g_mime_message_get_from (message), &name);
  g_assert_true (g_utf8_validate (name, -1, NULL));
  g_assert_true (g_str_has_prefix (name, "desk \xef\xbf\xbd"));
  g_assert_cmpstr (g_mime_object_get_header (GMIME_OBJECT (message), "X-Ticket-Queue"), ==,
                   "q\xef\xbf\xbd");
  g_autofree char *body = decoded_body (message);
  g_assert_true (g_utf8_validate (body, -1, NULL));
  /* GLib replaces each byte of a broken sequence on its own. */
  g_assert_cmpstr (body, ==, "body \xef\xbf\xbd\xef\xbf\xbd end\r\n\xef\xbf\xbd\xef\xbf\xbd\r\n");
  assert_single_safe_mail (text, message);
  g_object_unref (message);
}

static void
test_implausible_message_ids_left_out (void)
{
  const char *bad_ids[] = {
    "has space@example.com",
    "<bracketed@example.com>",
    "a>b@example.com",
    "x@example.com\r\nBcc: victim@example.com",
    "x@example.com\nBcc: victim@example.com",
    "tab\t@example.com",
    "comma,split@example.com",
    "",
    "\xd8\xb3@example.com",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad_ids); i++)
    {
      const char *references[] = { "good-1@example.com", bad_ids[i], "good-2@example.com", NULL };
      TmAckMail mail = sample_mail ();
      mail.message_id = bad_ids[i];
      mail.in_reply_to = bad_ids[i];
      mail.references = references;
      g_autofree char *text = compose_checked (&mail);
      g_assert_cmpuint (raw_header_count (text, "Message-ID"), ==, 0);
      g_assert_cmpuint (raw_header_count (text, "In-Reply-To"), ==, 0);
      g_assert_cmpuint (raw_header_count (text, "References"), ==, 1);
      GMimeMessage *message = parse (text);
      GMimeReferences *parsed = parsed_references (message, "References");
      g_assert_cmpint (g_mime_references_length (parsed), ==, 2);
      g_assert_cmpstr (g_mime_references_get_message_id (parsed, 0), ==, "good-1@example.com");
      g_assert_cmpstr (g_mime_references_get_message_id (parsed, 1), ==, "good-2@example.com");
      g_mime_references_free (parsed);
      assert_single_safe_mail (text, message);
      g_assert_cmpuint (raw_header_count (text, "To"), ==, 1);
      g_object_unref (message);
    }

  char too_long[300];
  memset (too_long, 'i', sizeof too_long - 1);
  too_long[sizeof too_long - 1] = '\0';
  TmAckMail mail = sample_mail ();
  mail.in_reply_to = too_long;
  mail.references = NULL;
  g_autofree char *text = compose_checked (&mail);
  g_assert_cmpuint (raw_header_count (text, "In-Reply-To"), ==, 0);
  g_assert_cmpuint (raw_header_count (text, "References"), ==, 0);
}

static void
test_implausible_addresses_left_out (void)
{
  const char *bad_addresses[] = {
    "victim@example.com\r\nBcc: other@example.com",
    "a@example.com\nBcc: other@example.com",
    "two@example.com,three@example.com",
    "semi@example.com;x@example.com",
    "Name <x@example.com>",
    "no-at-sign",
    "@example.com",
    "x@",
    "a@b@example.com",
    "sp ace@example.com",
    "\"quoted\"@example.com",
    "\xd9\x85@example.com",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad_addresses); i++)
    {
      TmAckMail mail = sample_mail ();
      mail.to_address = bad_addresses[i];
      g_autofree char *text = compose_checked (&mail);
      g_assert_cmpuint (raw_header_count (text, "To"), ==, 0);
      g_assert_cmpuint (raw_header_count (text, "From"), ==, 1);
      GMimeMessage *message = parse (text);
      assert_single_safe_mail (text, message);
      g_assert_cmpint (internet_address_list_length (g_mime_message_get_to (message)), ==, 0);
      g_object_unref (message);

      mail = sample_mail ();
      mail.from_address = bad_addresses[i];
      g_autofree char *from_text = compose_checked (&mail);
      g_assert_cmpuint (raw_header_count (from_text, "From"), ==, 0);
      g_assert_cmpuint (raw_header_count (from_text, "X-Loop"), ==, 0);
      g_assert_cmpuint (raw_header_count (from_text, "To"), ==, 1);
      message = parse (from_text);
      assert_single_safe_mail (from_text, message);
      g_object_unref (message);
    }
}

static void
test_long_fields_stay_within_line_limit (void)
{
  GString *long_name = g_string_new (NULL);
  for (int i = 0; i < 200; i++)
    g_string_append (long_name, "نام‌خانوادگی");
  char long_ascii[1200];
  memset (long_ascii, 'q', sizeof long_ascii - 1);
  long_ascii[sizeof long_ascii - 1] = '\0';
  GString *long_hostile = g_string_new (NULL);
  for (int i = 0; i < 40; i++)
    g_string_append (long_hostile, "x  Bcc: \"victim\"@example.com, (c) <a@b> \\ ;");
  GString *long_words = g_string_new (NULL);
  for (int i = 0; i < 300; i++)
    g_string_append (long_words, i % 7 == 6 ? "Smith. " : "word ");
  g_strchomp (long_words->str);
  long_words->len = strlen (long_words->str);
  const char *texts[] = { long_name->str, long_ascii, long_hostile->str, long_words->str };
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      TmAckMail mail = sample_mail ();
      mail.to_name = texts[i];
      mail.from_name = texts[(i + 1) % G_N_ELEMENTS (texts)];
      mail.queue_name = texts[i];
      mail.subject = texts[(i + 2) % G_N_ELEMENTS (texts)];
      g_autofree char *text = compose_checked (&mail);
      assert_encoded_words_short (text);
      GMimeMessage *message = parse (text);
      const char *name = NULL;
      g_assert_cmpstr (only_address (g_mime_message_get_to (message), &name), ==,
                       "fatemeh@customer.example");
      assert_same_text (name, mail.to_name);
      g_assert_cmpstr (only_address (g_mime_message_get_from (message), &name), ==,
                       "support@desk.example");
      assert_same_text (name, mail.from_name);
      assert_same_text (g_mime_message_get_subject (message), mail.subject);
      assert_same_text (g_mime_object_get_header (GMIME_OBJECT (message), "X-Ticket-Queue"),
                        mail.queue_name);
      assert_single_safe_mail (text, message);
      g_assert_cmpuint (raw_header_count (text, "To"), ==, 1);
      g_object_unref (message);
    }
  g_string_free (long_name, TRUE);
  g_string_free (long_hostile, TRUE);
  g_string_free (long_words, TRUE);
}

static void
test_empty_subject_and_body (void)
{
  TmAckMail mail = sample_mail ();
  mail.subject = "";
  mail.body = "";
  g_autofree char *text = compose_checked (&mail);
  GMimeMessage *message = parse (text);
  assert_single_safe_mail (text, message);
  g_autofree char *body = decoded_body (message);
  g_assert_cmpstr (body, ==, "");
  g_object_unref (message);
}

static void
test_length_matches_text (void)
{
  TmAckMail mail = sample_mail ();
  gsize length = 0;
  g_autofree char *text = tm_ack_mail_compose (&mail, &length);
  g_assert_cmpuint (length, ==, strlen (text));
  g_autofree char *again = tm_ack_mail_compose (&mail, NULL);
  g_assert_cmpstr (again, ==, text);
}

static void
test_new_message_id_format (void)
{
  g_autoptr (GRegex) shape
    = g_regex_new ("^ticket-1042\\.ack\\.[0-9a-f]{32}@desk\\.example$", 0, 0, NULL);
  g_autofree char *id = tm_ack_mail_new_message_id ("ack", 1042, "desk.example");
  g_assert_true (g_regex_match (shape, id, 0, NULL));

  /* Usable as our own Message-ID: composing writes it unchanged. */
  TmAckMail mail = sample_mail ();
  mail.message_id = id;
  g_autofree char *text = compose_checked (&mail);
  GMimeMessage *message = parse (text);
  g_assert_cmpstr (g_mime_message_get_message_id (message), ==, id);
  g_object_unref (message);

  /* A domain or kind that would break the header is filtered, not copied. */
  g_autofree char *odd = tm_ack_mail_new_message_id ("re ply", 7, "bad domain>\r\n");
  g_assert_true (g_str_has_prefix (odd, "ticket-7.re-ply."));
  g_assert_true (g_str_has_suffix (odd, "@bad-domain---"));
  mail.message_id = odd;
  g_autofree char *odd_text = compose_checked (&mail);
  g_assert_cmpuint (raw_header_count (odd_text, "Message-ID"), ==, 1);
}

static void
test_new_message_ids_differ (void)
{
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (int i = 0; i < 2000; i++)
    {
      char *id = tm_ack_mail_new_message_id ("ack", 1042, "desk.example");
      g_assert_false (g_hash_table_contains (seen, id));
      g_hash_table_add (seen, id);
    }
  g_assert_cmpuint (g_hash_table_size (seen), ==, 2000);
}

/* Addresses the composer cannot write as a plain addr-spec: no To would
 * come out, so no acknowledgement is queued (found by fuzz-pipeline). */
static void
test_address_plausibility (void)
{
  const char *bad[] = { ".a@x.example", "a.@x.example", "a..b@x.example", "a@x.example.",
                        "فاطمه@x.example", "a b@x.example", "a@b@x.example", "", "a", NULL };
  for (const char *const *address = bad; *address != NULL; address++)
    if (tm_ack_mail_address_is_plausible (*address))
      g_error ("\"%s\" should not be writable", *address);
  g_assert_true (tm_ack_mail_address_is_plausible ("a.b@x.example"));
  g_assert_true (tm_ack_mail_address_is_plausible ("fatima+tickets@xn--mgbh0fb.example"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_mime_init ();
  g_test_add_func ("/ack-mail/headers/every-header-once", test_every_header_once);
  g_test_add_func ("/ack-mail/addresses/plausibility", test_address_plausibility);
  g_test_add_func ("/ack-mail/headers/optional-fields", test_optional_fields);
  g_test_add_func ("/ack-mail/headers/long-fields-within-998", test_long_fields_stay_within_line_limit);
  g_test_add_func ("/ack-mail/subject/arabic-persian-round-trip", test_subject_round_trip);
  g_test_add_func ("/ack-mail/subject/encoded-word-boundaries", test_encoded_word_boundaries);
  g_test_add_func ("/ack-mail/body/round-trip", test_body_round_trip);
  g_test_add_func ("/ack-mail/body/final-line-break-added", test_body_final_line_break_added);
  g_test_add_func ("/ack-mail/body/controls-become-spaces", test_body_controls);
  g_test_add_func ("/ack-mail/body/empty", test_empty_subject_and_body);
  g_test_add_func ("/ack-mail/references/keep-last-twenty", test_references_keep_last_twenty);
  g_test_add_func ("/ack-mail/injection/crlf-in-text-fields", test_injection_in_text_fields);
  g_test_add_func ("/ack-mail/injection/control-characters", test_control_characters_become_spaces);
  g_test_add_func ("/ack-mail/injection/invalid-utf8", test_invalid_utf8_becomes_replacement);
  g_test_add_func ("/ack-mail/injection/message-ids-left-out", test_implausible_message_ids_left_out);
  g_test_add_func ("/ack-mail/injection/addresses-left-out", test_implausible_addresses_left_out);
  g_test_add_func ("/ack-mail/compose/length", test_length_matches_text);
  g_test_add_func ("/ack-mail/message-id/format", test_new_message_id_format);
  g_test_add_func ("/ack-mail/message-id/unique", test_new_message_ids_differ);
  int status = g_test_run ();
  g_mime_shutdown ();
  return status;
}
