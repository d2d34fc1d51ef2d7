/* ack_mail.c - compose the mails the desk sends (acknowledgements and other
 * automatic replies) as RFC 5322 text ready for SMTP DATA, with GMime.
 *
 * Synopsis:
 *   char *tm_ack_mail_compose (const TmAckMail *mail, gsize *length);
 *     The whole message: CRLF line ends, 7-bit, lines of at most 998
 *     octets, ending with CRLF. Never fails on hostile field contents;
 *     a NULL where ack_mail.h promises a string is a caller bug and
 *     returns NULL through g_return_val_if_fail().
 *   char *tm_ack_mail_header_value (const char *text);
 *     TEXT as one line of header value, encoded as below (for the headers
 *     the milter adds to the passing mail).
 *   char *tm_ack_mail_new_message_id (const char *kind, gint64 ticket_id,
 *                                     const char *domain);
 *     "ticket-ID.KIND.<32 hex digits>@DOMAIN"; the hex digits are 128 bits
 *     from getrandom(2) (GLib's generator only when the kernel's is missing).
 *
 * Every field may come from a customer's mail, so each is treated as data:
 *  - header text (subject, names, queue name, Auto-Submitted) is made valid
 *    UTF-8 (invalid bytes become U+FFFD) and its controls, CR, LF, TAB and
 *    U+2028/U+2029 become spaces, then trimmed. Plain ASCII (single spaces,
 *    short words; names also short) is left to GMime to fold or quote;
 *    anything else this module writes itself as RFC 2047 encoded words in
 *    UTF-8, one per line, whole characters only - "B", or "Q" where base64
 *    would need padding in mid-run - working round GMime 3.2 encoder and
 *    parser bugs (see gmime_writes_exactly()), so that it reads back
 *    exactly with GMime and everything else;
 *  - addresses must be plausible (printable ASCII, one '@', no white space
 *    and none of <>()[]\,;:" - a comma would smuggle in a second recipient)
 *    and at most 254 octets, or the header that would carry them is left
 *    out: a bad To address gives a mail without To, never a wrong one;
 *  - message-ids follow the same rule (no '@' required: some clients write
 *    ids without one) and at most 255 octets, which keeps every
 *    In-Reply-To and folded References line far below 998 octets;
 *  - Content-Language is written only when it looks like a language tag;
 *  - the body keeps its line breaks (LF or CRLF become CRLF), a lone CR
 *    and other controls except TAB become spaces, and a final line break is
 *    added when missing because SMTP DATA must end with one. The text is put
 *    in canonical CRLF form before encoding (RFC 2045 wants that for base64)
 *    and GMime chooses the transfer encoding under the 7-bit constraint:
 *    7bit for short-lined ASCII, otherwise quoted-printable or base64 by its
 *    estimate of which is shorter.
 * Ownership: both functions return a new string for g_free().
 * Threads: no shared state; safe in several threads once GMime is
 * initialised (tm_message_library_init()).
 */
#include "ack_mail.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <gmime/gmime.h>

/* RFC 5321's limit on a path, less the angle brackets. */
#define ADDRESS_MAX_LENGTH 254
/* No standard limit; ids from real clients are far shorter, and this keeps
 * "In-Reply-To: <...>" inside one 998-octet line. */
#define MESSAGE_ID_MAX_LENGTH 255
/* RFC 5646 suggests 35 characters covers every tag in use. */
#define LANGUAGE_MAX_LENGTH 35
/* RFC 5322 3.6.4 leaves the number open; ack_mail.h promises the last 20. */
#define REFERENCES_MAX 20
#define RANDOM_BYTES 16
/* "=?UTF-8?B?" + 60 base64 characters + "?=" is 72, under RFC 2047's 75. */
#define ENCODED_WORD_MAX_BYTES 45
/* Longer words GMime would turn into over-long encoded words. */
#define PLAIN_WORD_MAX_LENGTH 60
/* Display names GMime writes on one line, unfolded. */
#define PLAIN_NAME_MAX_LENGTH 40
/* "=?UTF-8?Q?" + 63 + "?=" is 75. */
#define Q_WORD_MAX_TEXT 63

/* Characters that end or structure an address or msg-id in a header; any of
 * them in a value could let text from a mail change the header's meaning. */
static const char structural_specials[] = "<>()[]\\,;:\"";

static gboolean
is_plain_printable_ascii (char c)
{
  return c > ' ' && c < 0x7f && strchr (structural_specials, c) == NULL;
}

static gboolean
is_plausible_message_id (const char *id)
{
  if (id == NULL)
    return FALSE;
  gsize length = strlen (id);
  if (length == 0 || length > MESSAGE_ID_MAX_LENGTH)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    if (!is_plain_printable_ascii (id[i]))
      return FALSE;
  return TRUE;
}

gboolean
tm_ack_mail_address_is_plausible (const char *address)
{
  if (address == NULL)
    return FALSE;
  gsize length = strlen (address);
  if (length < 3 || length > ADDRESS_MAX_LENGTH)
    return FALSE;
  const char *at = strchr (address, '@');
  if (at == NULL || at == address || at[1] == '\0' || strchr (at + 1, '@') != NULL)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    if (!is_plain_printable_ascii (address[i]))
      return FALSE;
  /* Dot-atoms on both sides of the '@': GMime writes "a..b@x", ".a@x",
   * "a.@x" or "a@x..y" as they are, and its own parser (like other strict
   * ones) then finds no address in that To: at all; "a@x." it writes as
   * "a@x". Found by tests/fuzz/fuzz-template. */
  if (address[0] == '.' || at[-1] == '.' || at[1] == '.' || address[length - 1] == '.'
      || strstr (address, "..") != NULL)
    return FALSE;
  return TRUE;
}

static gboolean
is_plausible_language (const char *language)
{
  if (language == NULL || !g_ascii_isalpha (language[0]))
    return FALSE;
  gsize length = strlen (language);
  if (length > LANGUAGE_MAX_LENGTH)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    if (!g_ascii_isalnum (language[i]) && language[i] != '-')
      return FALSE;
  return TRUE;
}

/* TEXT as one line of valid UTF-8, trimmed; NULL when nothing is left. */
static char *
header_text (const char *text)
{
  if (text == NULL)
    return NULL;
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  GString *line = g_string_sized_new (strlen (valid));
  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (g_unichar_iscntrl (c) || c == 0x2028 || c == 0x2029)
        g_string_append_c (line, ' ');
      else
        g_string_append_len (line, p, g_utf8_next_char (p) - p);
    }
  char *trimmed = g_strstrip (g_string_free (line, FALSE));
  if (*trimmed == '\0')
    {
      g_free (trimmed);
      return NULL;
    }
  return trimmed;
}

/* The body in canonical form: valid UTF-8, CRLF after every line. */
static GString *
canonical_body (const char *body)
{
  g_autofree char *valid = g_utf8_make_valid (body, -1);
  GString *text = g_string_sized_new (strlen (valid) + strlen (valid) / 16 + 2);
  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (c == '\r' && p[1] == '\n')
        continue;               /* the LF that follows writes the CRLF */
      if (c == '\n')
        g_string_append (text, "\r\n");
      else if (c != '\t' && g_unichar_iscntrl (c))
        g_string_append_c (text, ' ');
      else
        g_string_append_len (text, p, g_utf8_next_char (p) - p);
    }
  if (text->len > 0 && !g_str_has_suffix (text->str, "\r\n"))
    g_string_append (text, "\r\n");
  return text;
}

/* Whether GMime may write TEXT itself: at most MAX_LENGTH octets of
 * printable ASCII in words of at most PLAIN_WORD_MAX_LENGTH separated by
 * single spaces, which it folds or quotes so that it reads back exactly.
 * Everything else we encode: GMime 3.2 writes encoded words longer than
 * RFC 2047's 75 characters and puts base64 padding in the middle of a run
 * of words, which its own parser (3.2.13) then cuts short; a display name
 * it folds comes back from its parser with the line break inside; and
 * ASCII that looks like an encoded word would reach the reader as
 * something else. */
static gboolean
gmime_writes_exactly (const char *text, gsize max_length)
{
  if (strlen (text) > max_length)
    return FALSE;
  gsize word_length = 0;
  for (const char *p = text; *p != '\0'; p++)
    {
      if (*p < ' ' || *p > '~' || (p[0] == '=' && p[1] == '?'))
        return FALSE;
      if (*p != ' ')
        word_length++;
      else if (word_length == 0)
        return FALSE;           /* leading or doubled space */
      else
        word_length = 0;
      if (word_length > PLAIN_WORD_MAX_LENGTH)
        return FALSE;
    }
  return *text == '\0' || word_length > 0;
}

/* How many bytes of TEXT (whole characters) the next "B" word carries: the
 * longest prefix of at most ENCODED_WORD_MAX_BYTES that is all the rest or
 * a multiple of 3 bytes, so that only the last word ends in base64 padding
 * (GMime 3.2.13 drops every word that follows a padded one, GMime issue
 * #133); 0 when there is no such prefix ("a" then only 3-byte characters). */
static gsize
base64_word_bytes (const char *text)
{
  gsize best = 0;
  for (const char *p = text; *p != '\0';)
    {
      p = g_utf8_next_char (p);
      gsize length = (gsize) (p - text);
      if (length > ENCODED_WORD_MAX_BYTES)
        break;
      if (*p == '\0' || length % 3 == 0)
        best = length;
    }
  return best;
}

/* Letters safe unencoded in a "Q" word anywhere, display names included
 * (RFC 2047 5(3)). */
static gboolean
is_q_safe (guchar c)
{
  return g_ascii_isalnum (c) || (c != '\0' && strchr ("!*+-/", c) != NULL);
}

/* Appends one "Q" word (no padding to upset a decoder) holding the first
 * whole characters of TEXT; returns how many bytes it took. */
static gsize
append_q_word (GString *raw, const char *text)
{
  g_string_append (raw, "=?UTF-8?Q?");
  gsize used = 0, width = 0;
  while (text[used] != '\0')
    {
      gsize char_bytes = (gsize) (g_utf8_next_char (text + used) - (text + used));
      gsize char_width = 0;
      for (gsize i = 0; i < char_bytes; i++)
        char_width += is_q_safe ((guchar) text[used + i]) || text[used + i] == ' ' ? 1 : 3;
      if (width + char_width > Q_WORD_MAX_TEXT && used > 0)
        break;
      for (gsize i = 0; i < char_bytes; i++)
        {
          guchar c = (guchar) text[used + i];
          if (c == ' ')
            g_string_append_c (raw, '_');
          else if (is_q_safe (c))
            g_string_append_c (raw, (char) c);
          else
            g_string_append_printf (raw, "=%02X", c);
        }
      width += char_width;
      used += char_bytes;
    }
  g_string_append (raw, "?=");
  return used;
}

/* A raw header value (leading space, "\n" line ends as GMime keeps them)
 * holding all of TEXT as RFC 2047 encoded words in UTF-8, whole characters
 * only, one word of at most 75 characters per line. The white space
 * between encoded words is dropped by readers, so every space of TEXT
 * travels inside a word and TEXT decodes back exactly. */
static GString *
encoded_words (const char *text)
{
  GString *raw = g_string_new (NULL);
  for (const char *start = text; *start != '\0';)
    {
      g_string_append (raw, raw->len > 0 ? "\n " : " ");
      gsize bytes = base64_word_bytes (start);
      if (bytes == 0)
        {
          start += append_q_word (raw, start);
          continue;
        }
      g_autofree char *base64 = g_base64_encode ((const guchar *) start, bytes);
      g_string_append_printf (raw, "=?UTF-8?B?%s?=", base64);
      start += bytes;
    }
  return raw;
}

/* Writes TEXT as the value of the header NAME of OBJECT, encoding it
 * ourselves where GMime would get it wrong: GMime writes a header's raw
 * value as it is (only the line ends converted), so replacing the raw value
 * it formatted puts our encoded words on the wire. */
static void
set_text_header (GMimeObject *object, const char *name, const char *text)
{
  g_mime_object_set_header (object, name, text, "utf-8");
  if (gmime_writes_exactly (text, G_MAXSIZE))
    return;
  GString *raw = encoded_words (text);
  g_string_append_c (raw, '\n');
  GMimeHeaderList *headers = g_mime_object_get_header_list (object);
  g_mime_header_set_raw_value (g_mime_header_list_get_header (headers, name), raw->str);
  g_string_free (raw, TRUE);
}

/* Adds ADDRESS with NAME as the From or To mailbox, or nothing when the
 * address is implausible; a name GMime would mangle is encoded as in
 * set_text_header(). */
static void
add_mailbox (GMimeMessage *message, GMimeAddressType type, const char *name,
             const char *address)
{
  if (!tm_ack_mail_address_is_plausible (address))
    return;
  g_autofree char *display_name = header_text (name);
  InternetAddress *mailbox = internet_address_mailbox_new (display_name, address);
  internet_address_list_add (g_mime_message_get_addresses (message, type), mailbox);
  g_object_unref (mailbox);
  if (display_name == NULL || gmime_writes_exactly (display_name, PLAIN_NAME_MAX_LENGTH))
    return;
  GString *raw = encoded_words (display_name);
  g_string_append_printf (raw, " <%s>\n", address);
  const char *header_name = type == GMIME_ADDRESS_TYPE_FROM ? "From" : "To";
  GMimeHeader *header
    = g_mime_header_list_get_header (g_mime_object_get_header_list (GMIME_OBJECT (message)),
                                     header_name);
  g_mime_header_set_raw_value (header, raw->str);
  g_string_free (raw, TRUE);
}

/* "<a> <b> ... <in-reply-to>": the last REFERENCES_MAX plausible ids of the
 * customer's References, then its Message-ID; NULL when there is none. */
static char *
references_value (const char *const *references, const char *in_reply_to)
{
  g_autoptr (GPtrArray) kept = g_ptr_array_new ();
  for (gsize i = 0; references != NULL && references[i] != NULL; i++)
    if (is_plausible_message_id (references[i]))
      g_ptr_array_add (kept, (gpointer) references[i]);
  guint first = kept->len > REFERENCES_MAX ? kept->len - REFERENCES_MAX : 0;
  if (is_plausible_message_id (in_reply_to))
    g_ptr_array_add (kept, (gpointer) in_reply_to);
  if (first >= kept->len)
    return NULL;
  GString *value = g_string_new (NULL);
  for (guint i = first; i < kept->len; i++)
    g_string_append_printf (value, "%s<%s>", value->len > 0 ? " " : "",
                            (const char *) g_ptr_array_index (kept, i));
  return g_string_free (value, FALSE);
}

char *
tm_ack_mail_header_value (const char *text)
{
  g_return_val_if_fail (text != NULL, NULL);
  g_autofree char *line = header_text (text);
  if (line == NULL)
    return g_strdup ("");
  if (gmime_writes_exactly (line, G_MAXSIZE))
    return g_steal_pointer (&line);
  /* encoded_words() starts with a space and folds with "\n "; the caller
   * folds for itself, so the words are joined by single spaces here. */
  GString *raw = encoded_words (line);
  GString *value = g_string_sized_new (raw->len);
  for (const char *c = raw->str + 1; *c != '\0'; c++)
    if (*c != '\n')
      g_string_append_c (value, *c);
  g_string_free (raw, TRUE);
  return g_string_free (value, FALSE);
}

static GMimePart *
text_part (const char *body, const char *language)
{
  GMimePart *part = g_mime_part_new_with_type ("text", "plain");
  g_mime_object_set_content_type_parameter (GMIME_OBJECT (part), "charset", "utf-8");

  GString *text = canonical_body (body);
  GMimeStream *stream = g_mime_stream_mem_new_with_buffer (text->str, text->len);
  g_string_free (text, TRUE);
  GMimeDataWrapper *content
    = g_mime_data_wrapper_new_with_stream (stream, GMIME_CONTENT_ENCODING_DEFAULT);
  g_object_unref (stream);
  g_mime_part_set_content (part, content);
  g_object_unref (content);

  g_mime_part_set_content_encoding (part,
    g_mime_part_get_best_content_encoding (part, GMIME_ENCODING_CONSTRAINT_7BIT));
  if (is_plausible_language (language))
    g_mime_object_set_header (GMIME_OBJECT (part), "Content-Language", language, NULL);
  return part;
}

char *
tm_ack_mail_compose (const TmAckMail *mail, gsize *length)
{
  g_return_val_if_fail (mail != NULL, NULL);
  g_return_val_if_fail (mail->from_address != NULL, NULL);
  g_return_val_if_fail (mail->to_address != NULL, NULL);
  g_return_val_if_fail (mail->subject != NULL, NULL);
  g_return_val_if_fail (mail->body != NULL, NULL);
  g_return_val_if_fail (mail->message_id != NULL, NULL);
  g_return_val_if_fail (mail->queue_name != NULL, NULL);

  /* Without pretty headers: GMime would otherwise reserve empty Reply-To,
   * Cc and Bcc slots, and headers come out in the order they are set. */
  GMimeMessage *message = g_mime_message_new (FALSE);
  GMimeObject *object = GMIME_OBJECT (message);

  add_mailbox (message, GMIME_ADDRESS_TYPE_FROM, mail->from_name, mail->from_address);
  add_mailbox (message, GMIME_ADDRESS_TYPE_TO, mail->to_name, mail->to_address);

  g_autofree char *subject = header_text (mail->subject);
  set_text_header (object, "Subject", subject != NULL ? subject : "");

  GDateTime *date = g_date_time_new_from_unix_local (mail->date);
  if (date == NULL)             /* outside the years 1-9999 */
    date = g_date_time_new_now_local ();
  g_mime_message_set_date (message, date);
  g_date_time_unref (date);

  if (is_plausible_message_id (mail->message_id))
    g_mime_message_set_message_id (message, mail->message_id);
  if (is_plausible_message_id (mail->in_reply_to))
    {
      g_autofree char *in_reply_to = g_strdup_printf ("<%s>", mail->in_reply_to);
      g_mime_object_set_header (object, "In-Reply-To", in_reply_to, NULL);
    }
  g_autofree char *references = references_value (mail->references, mail->in_reply_to);
  if (references != NULL)
    g_mime_object_set_header (object, "References", references, NULL);

  g_autofree char *auto_submitted = header_text (mail->auto_submitted);
  set_text_header (object, "Auto-Submitted",
                   auto_submitted != NULL ? auto_submitted : "auto-replied");
  g_mime_object_set_header (object, "X-Auto-Response-Suppress", "All", NULL);
  if (tm_ack_mail_address_is_plausible (mail->from_address))
    g_mime_object_set_header (object, "X-Loop", mail->from_address, NULL);

  char ticket_id[32];
  g_snprintf (ticket_id, sizeof ticket_id, "%" G_GINT64_FORMAT, mail->ticket_id);
  g_mime_object_set_header (object, "X-Ticket-ID", ticket_id, NULL);
  g_autofree char *queue_name = header_text (mail->queue_name);
  if (queue_name != NULL)
    set_text_header (object, "X-Ticket-Queue", queue_name);
  g_mime_object_set_header (object, "MIME-Version", "1.0", NULL);

  GMimePart *part = text_part (mail->body, mail->language);
  g_mime_message_set_mime_part (message, GMIME_OBJECT (part));
  g_object_unref (part);

  GMimeFormatOptions *format = g_mime_format_options_new ();
  g_mime_format_options_set_newline_format (format, GMIME_NEWLINE_FORMAT_DOS);
  char *text = g_mime_object_to_string (object, format);
  g_mime_format_options_free (format);
  g_object_unref (message);

  if (length != NULL)
    *length = strlen (text);
  return text;
}

static void
fill_random (guint8 *buffer, gsize size)
{
  gsize filled = 0;
  while (filled < size)
    {
      ssize_t got = getrandom (buffer + filled, size - filled, 0);
      if (got > 0)
        filled += (gsize) got;
      else if (got < 0 && errno == EINTR)
        continue;
      else
        break;
    }
  /* Only without the kernel's generator (ENOSYS, a seccomp filter): GLib's
   * is seeded from /dev/urandom or the time and still makes a collision
   * between two ids unlikely, which is all a Message-ID needs. */
  for (; filled < size; filled++)
    buffer[filled] = (guint8) g_random_int_range (0, 256);
}

/* Appends TEXT keeping only characters in ALLOWED, others becoming '-'. */
static void
append_restricted (GString *out, const char *text, const char *allowed)
{
  for (const char *p = text; *p != '\0'; p++)
    g_string_append_c (out, g_ascii_isalnum (*p) || strchr (allowed, *p) != NULL ? *p : '-');
}

char *
tm_ack_mail_new_message_id (const char *kind, gint64 ticket_id, const char *domain)
{
  g_return_val_if_fail (kind != NULL, NULL);
  g_return_val_if_fail (domain != NULL, NULL);

  guint8 random[RANDOM_BYTES];
  fill_random (random, sizeof random);

  GString *id = g_string_new (NULL);
  g_string_append_printf (id, "ticket-%" G_GINT64_FORMAT ".", ticket_id);
  append_restricted (id, *kind != '\0' ? kind : "mail", "-_");
  g_string_append_c (id, '.');
  for (gsize i = 0; i < sizeof random; i++)
    g_string_append_printf (id, "%02x", random[i]);
  g_string_append_c (id, '@');
  /* The domain comes from our own configuration; filtering it anyway keeps
   * the id plausible (and so written) whatever the caller passes. */
  append_restricted (id, *domain != '\0' ? domain : "localhost", ".-");
  return g_string_free (id, FALSE);
}
