/* ack_mail.c - compose the mails the desk sends (acknowledgements and other
 * automatic replies) as RFC 5322 text ready for SMTP DATA, written directly
 * (GMime reads them back in the tests, and is what the limits below were
 * made to satisfy).
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
 *    short words; names also short) is written plain (folded at spaces,
 *    a name quoted when it is not all atoms); anything else as RFC 2047
 *    encoded words in UTF-8, one per line, whole characters only - "B", or
 *    "Q" where base64 would need padding in mid-run - which is what reads
 *    back exactly with GMime 3.2 (whose own encoder and parser disagree:
 *    see gmime_writes_exactly()) and everything else;
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
 *    the transfer encoding is 7bit for short-lined ASCII, otherwise
 *    quoted-printable when at most 17% of the octets are 8-bit, else base64
 *    (the rule GMime uses under a 7-bit constraint).
 * Ownership: both functions return a new string for g_free().
 * Threads: no shared state; safe in several threads.
 */
#include "ack_mail.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>


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
/* Longer plain words are encoded (GMime would make over-long encoded words
 * of them when folding, and a reader must get them back exactly). */
#define PLAIN_WORD_MAX_LENGTH 60
/* Longer plain display names are encoded rather than folded: GMime's
 * parser keeps a line break inside a folded name. */
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

/* TEXT made valid UTF-8; a copy only when it was not. *copy owns it. */
static const char *
valid_utf8 (const char *text, char **copy)
{
  *copy = NULL;
  if (g_utf8_validate (text, -1, NULL))
    return text;
  *copy = g_utf8_make_valid (text, -1);
  return *copy;
}

/* The length of the control character (C0, DEL, C1) at P in valid UTF-8,
 * or 0 when there is none: the byte-level reading of g_unichar_iscntrl(),
 * so that runs of ordinary text are copied whole. With separators, U+2028
 * and U+2029 count too: tm_unichar_breaks_line() (normalize.h) made on the
 * bytes. */
static gsize
control_at (const char *p, gboolean separators)
{
  guchar c = (guchar) p[0];
  if (c < 0x20 || c == 0x7f)
    return 1;
  if (c == 0xc2 && (guchar) p[1] >= 0x80 && (guchar) p[1] <= 0x9f)
    return 2;
  if (separators && c == 0xe2 && (guchar) p[1] == 0x80
      && ((guchar) p[2] == 0xa8 || (guchar) p[2] == 0xa9))
    return 3;
  return 0;
}

/* TEXT as one line of valid UTF-8, trimmed; NULL when nothing is left. */
static char *
header_text (const char *text)
{
  if (text == NULL)
    return NULL;
  g_autofree char *copy = NULL;
  const char *valid = valid_utf8 (text, &copy);
  GString *line = g_string_sized_new (strlen (valid));
  const char *run = valid;
  const char *p = valid;
  while (*p != '\0')
    {
      gsize control = control_at (p, TRUE);
      if (control == 0)
        {
          p++;
          continue;
        }
      g_string_append_len (line, run, p - run);
      g_string_append_c (line, ' ');
      p += control;
      run = p;
    }
  g_string_append_len (line, run, p - run);
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
  g_autofree char *copy = NULL;
  const char *valid = valid_utf8 (body, &copy);
  GString *text = g_string_sized_new (strlen (valid) + strlen (valid) / 16 + 2);
  const char *run = valid;
  const char *p = valid;
  while (*p != '\0')
    {
      gsize control = *p == '\t' ? 0 : control_at (p, FALSE);
      if (control == 0)
        {
          p++;
          continue;
        }
      g_string_append_len (text, run, p - run);
      if (p[0] == '\r' && p[1] == '\n')
        ;                       /* the LF that follows writes the CRLF */
      else if (*p == '\n')
        g_string_append (text, "\r\n");
      else
        g_string_append_c (text, ' ');
      p += control;
      run = p;
    }
  g_string_append_len (text, run, p - run);
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

/* A header value (after a leading space) holding all of TEXT as RFC 2047
 * encoded words in UTF-8, whole characters only, each at most 75
 * characters, joined by BETWEEN: "\r\n " folds one word a line, " " keeps
 * them on one line for a caller that folds for itself. The white space
 * between encoded words is dropped by readers, so every space of TEXT
 * travels inside a word and TEXT decodes back exactly. */
static GString *
encoded_words (const char *text, const char *between)
{
  GString *raw = g_string_new (NULL);
  for (const char *start = text; *start != '\0';)
    {
      g_string_append (raw, raw->len > 0 ? between : " ");
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
  /* The caller folds for itself: one line, without the leading space. */
  GString *words = encoded_words (line, " ");
  char *value = g_strdup (words->str + 1);
  g_string_free (words, TRUE);
  return value;
}

/* Appends "NAME: VALUE" CRLF, VALUE folded at its spaces so that lines stay
 * near 78 octets (a word longer than that keeps its own line, far below
 * 998: every value here is made of bounded words). */
static void
append_folded (GString *out, const char *name, const char *value)
{
  g_string_append_printf (out, "%s:", name);
  gsize line_length = strlen (name) + 1;
  const char *word = value;
  while (*word != '\0')
    {
      const char *end = strchr (word, ' ');
      gsize length = end != NULL ? (gsize) (end - word) : strlen (word);
      if (line_length + 1 + length > 78 && line_length > strlen (name) + 1)
        {
          g_string_append (out, "\r\n");
          line_length = 0;
        }
      g_string_append_c (out, ' ');
      g_string_append_len (out, word, (gssize) length);
      line_length += 1 + length;
      word += length;
      while (*word == ' ')
        word++;
    }
  g_string_append (out, "\r\n");
}

/* Appends TEXT (one line, see header_text()) as the value of NAME: plain
 * when it is plain short-worded ASCII, else as RFC 2047 encoded words, one
 * per line. */
static void
append_text_header (GString *out, const char *name, const char *text)
{
  if (gmime_writes_exactly (text, G_MAXSIZE))
    {
      append_folded (out, name, text);
      return;
    }
  GString *words = encoded_words (text, "\r\n ");
  g_string_append_printf (out, "%s:%s\r\n", name, words->str);
  g_string_free (words, TRUE);
}

/* RFC 5322 atext, and the space between words: a plain display name made
 * only of these needs no quotes. */
static gboolean
is_atext_or_space (char c)
{
  return g_ascii_isalnum (c) || (c != '\0' && strchr (" !#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Appends the From or To header for ADDRESS with NAME, or nothing when the
 * address is implausible (a bad To gives a mail without To, never a wrong
 * one). */
static void
append_mailbox (GString *out, const char *header, const char *name, const char *address)
{
  if (!tm_ack_mail_address_is_plausible (address))
    return;
  g_autofree char *display_name = header_text (name);
  if (display_name == NULL)
    {
      g_string_append_printf (out, "%s: %s\r\n", header, address);
      return;
    }
  if (!gmime_writes_exactly (display_name, PLAIN_NAME_MAX_LENGTH))
    {
      GString *words = encoded_words (display_name, "\r\n ");
      g_string_append_printf (out, "%s:%s\r\n <%s>\r\n", header, words->str, address);
      g_string_free (words, TRUE);
      return;
    }
  gboolean atoms = TRUE;
  for (const char *c = display_name; *c != '\0'; c++)
    if (!is_atext_or_space (*c))
      atoms = FALSE;
  if (atoms)
    {
      g_string_append_printf (out, "%s: %s <%s>\r\n", header, display_name, address);
      return;
    }
  g_string_append_printf (out, "%s: \"", header);
  for (const char *c = display_name; *c != '\0'; c++)
    {
      if (*c == '"' || *c == '\\')
        g_string_append_c (out, '\\');
      g_string_append_c (out, *c);
    }
  g_string_append_printf (out, "\" <%s>\r\n", address);
}

/* The machine's time zone, read once: GLib's "local" zone looks at
 * /etc/localtime again (readlink, stat) for every date it makes, which was
 * three system calls an acknowledgement. A zone changed under a running
 * daemon is taken at its restart, as with glibc's own localtime(). */
static GTimeZone *
local_zone (void)
{
  static GTimeZone *zone = NULL;
  if (g_once_init_enter (&zone))
    g_once_init_leave (&zone, g_time_zone_new_local ());
  return zone;
}

/* RFC 5322 date-time, in English whatever the locale. */
static void
append_date (GString *out, gint64 unix_time)
{
  static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
  static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
  GDateTime *utc = g_date_time_new_from_unix_utc (unix_time);
  GDateTime *date = utc != NULL ? g_date_time_to_timezone (utc, local_zone ()) : NULL;
  g_clear_pointer (&utc, g_date_time_unref);
  if (date == NULL)             /* outside the years 1-9999 */
    date = g_date_time_new_now (local_zone ());
  gint64 offset_minutes = g_date_time_get_utc_offset (date) / G_TIME_SPAN_MINUTE;
  char sign = offset_minutes < 0 ? '-' : '+';
  offset_minutes = ABS (offset_minutes);
  g_string_append_printf (out, "Date: %s, %02d %s %04d %02d:%02d:%02d %c%02d%02d\r\n",
                          days[g_date_time_get_day_of_week (date) - 1],
                          g_date_time_get_day_of_month (date),
                          months[g_date_time_get_month (date) - 1], g_date_time_get_year (date),
                          g_date_time_get_hour (date), g_date_time_get_minute (date),
                          g_date_time_get_second (date), sign, (int) (offset_minutes / 60),
                          (int) (offset_minutes % 60));
  g_date_time_unref (date);
}

/* Appends TEXT (canonical CRLF lines) as quoted-printable: lines of at most
 * 76 octets with soft breaks, "=" and everything but printable ASCII
 * encoded, and a space or tab before a line end encoded too. */
static void
append_quoted_printable (GString *out, const GString *text)
{
  gsize column = 0;
  for (gsize i = 0; i < text->len; i++)
    {
      guchar c = (guchar) text->str[i];
      if (c == '\r' && i + 1 < text->len && text->str[i + 1] == '\n')
        {
          g_string_append (out, "\r\n");
          column = 0;
          i++;
          continue;
        }
      gboolean at_line_end = i + 1 >= text->len || text->str[i + 1] == '\r';
      gboolean literal = (c >= 33 && c <= 126 && c != '=')
                         || ((c == ' ' || c == '\t') && !at_line_end);
      gsize width = literal ? 1 : 3;
      if (column + width > 75)
        {
          g_string_append (out, "=\r\n");
          column = 0;
        }
      if (literal)
        g_string_append_c (out, (char) c);
      else
        g_string_append_printf (out, "=%02X", c);
      column += width;
    }
}

/* The body part's headers and content: 7bit for ASCII with short lines,
 * otherwise quoted-printable or base64, whichever is shorter (as GMime's
 * choice under a 7-bit constraint). */
static void
append_body (GString *out, const char *body, const char *language)
{
  GString *text = canonical_body (body);
  gsize eight_bit = 0, line = 0, longest = 0;
  for (gsize i = 0; i < text->len; i++)
    {
      if ((guchar) text->str[i] >= 0x80)
        eight_bit++;
      if (text->str[i] == '\n')
        line = 0;
      else if (++line > longest)
        longest = line;
    }
  g_string_append (out, "Content-Type: text/plain; charset=utf-8\r\n");
  if (is_plausible_language (language))
    g_string_append_printf (out, "Content-Language: %s\r\n", language);
  if (eight_bit == 0 && longest <= 998)
    {
      g_string_append (out, "Content-Transfer-Encoding: 7bit\r\n\r\n");
      g_string_append_len (out, text->str, (gssize) text->len);
    }
  else if (eight_bit <= text->len * 17 / 100)
    {
      g_string_append (out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
      append_quoted_printable (out, text);
      if (!g_str_has_suffix (out->str, "\r\n"))
        g_string_append (out, "\r\n");
    }
  else
    {
      g_string_append (out, "Content-Transfer-Encoding: base64\r\n\r\n");
      g_autofree char *base64 = g_base64_encode ((const guchar *) text->str, text->len);
      gsize length = strlen (base64);
      for (gsize at = 0; at < length; at += 76)
        {
          g_string_append_len (out, base64 + at, (gssize) MIN (76, length - at));
          g_string_append (out, "\r\n");
        }
    }
  g_string_free (text, TRUE);
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

  /* Written directly rather than built as a GMime object: composing with
   * GMime cost more than all the rest of a mail's work at end of message,
   * and every value is encoded here in any case (see the top). */
  GString *out = g_string_sized_new (2048 + strlen (mail->body) * 2);
  append_mailbox (out, "From", mail->from_name, mail->from_address);
  append_mailbox (out, "To", mail->to_name, mail->to_address);
  g_autofree char *subject = header_text (mail->subject);
  append_text_header (out, "Subject", subject != NULL ? subject : "");
  append_date (out, mail->date);
  if (is_plausible_message_id (mail->message_id))
    g_string_append_printf (out, "Message-ID: <%s>\r\n", mail->message_id);
  if (is_plausible_message_id (mail->in_reply_to))
    g_string_append_printf (out, "In-Reply-To: <%s>\r\n", mail->in_reply_to);
  g_autofree char *references = references_value (mail->references, mail->in_reply_to);
  if (references != NULL)
    append_folded (out, "References", references);
  g_autofree char *auto_submitted = header_text (mail->auto_submitted);
  append_text_header (out, "Auto-Submitted", auto_submitted != NULL ? auto_submitted : "auto-replied");
  g_string_append (out, "X-Auto-Response-Suppress: All\r\n");
  if (tm_ack_mail_address_is_plausible (mail->from_address))
    g_string_append_printf (out, "X-Loop: %s\r\n", mail->from_address);
  g_string_append_printf (out, "X-Ticket-ID: %" G_GINT64_FORMAT "\r\n", mail->ticket_id);
  g_autofree char *queue_name = header_text (mail->queue_name);
  if (queue_name != NULL)
    append_text_header (out, "X-Ticket-Queue", queue_name);
  g_string_append (out, "MIME-Version: 1.0\r\n");
  append_body (out, mail->body, mail->language);
  if (length != NULL)
    *length = out->len;
  return g_string_free (out, FALSE);
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
