/* charset.c - turn bytes of any declared charset into valid UTF-8.
 *
 * tm_charset_to_utf8() never fails. The order of attempts is:
 *   1. the declared charset, its name mapped through GMime's alias table
 *      (g_mime_charset_iconv_name: "cp1256", "ISO_8859-6", "utf8", ...);
 *   2. UTF-8;
 *   3. each fallback charset in order (typically "UTF-8", "windows-1256");
 *   4. the bytes read as UTF-8 with every byte that cannot be decoded
 *      replaced by U+FFFD (g_utf8_make_valid).
 * A conversion is accepted only when it consumed the whole input: a charset
 * that fails half-way never contributes a partial result.
 *
 * Two pragmatic exceptions to "all or nothing", both for text that really
 * is UTF-8: a multi-byte sequence cut off at the very end (the MTA adapter
 * truncates big mails at an arbitrary byte), and text declared UTF-8 where
 * at most one in ten of the non-ASCII bytes is broken. Falling back to a
 * single-byte charset there would turn a whole Arabic or Persian mail into
 * mojibake to save one character, so the broken bytes become U+FFFD.
 *
 * "unknown-8bit" (RFC 1428), "x-unknown", "unknown" and "x-user-defined"
 * are treated as "no charset declared": they say the sender did not know,
 * which is not an error worth a warning. Names with '/' or odd bytes are
 * refused, so that a mail cannot smuggle iconv suffixes such as //IGNORE.
 *
 * NUL bytes, and U+0000 produced by a conversion, become U+FFFD, so the
 * result is always a C string. Warnings are short English sentences
 * appended to the caller's array; charset names quoted in them are cut to
 * printable ASCII so that a hostile name cannot forge log lines.
 *
 * Uses GMime's charset tables, so it calls tm_message_library_init()
 * itself (idempotent and thread-safe). Safe to call from several threads.
 */
#include "charset.h"
#include "message.h"

#include <string.h>
#include <gmime/gmime.h>

/* Longest declared charset name taken seriously. */
#define CHARSET_NAME_MAX 64
/* "Mostly UTF-8": accept when invalid bytes <= non-ASCII bytes / this. */
#define UTF8_TOLERANCE_DIVISOR 10

/* A charset name made safe to quote in a warning. */
static char *
printable_name (const char *name)
{
  GString *out = g_string_new (NULL);
  for (const char *p = name; *p != '\0' && out->len < 40; p++)
    g_string_append_c (out, g_ascii_isprint (*p) && *p != '"' ? *p : '?');
  if (strlen (name) > 40)
    g_string_append (out, "...");
  return g_string_free (out, FALSE);
}

static gboolean
is_utf8_name (const char *iconv_name)
{
  return g_ascii_strcasecmp (iconv_name, "UTF-8") == 0
         || g_ascii_strcasecmp (iconv_name, "UTF8") == 0;
}

/* Names that mean "the sender did not know the charset". */
static gboolean
is_undeclared_name (const char *name)
{
  static const char *const undeclared[] = {
    "unknown-8bit", "x-unknown", "unknown", "x-user-defined", NULL
  };
  for (guint i = 0; undeclared[i] != NULL; i++)
    if (g_ascii_strcasecmp (name, undeclared[i]) == 0)
      return TRUE;
  return FALSE;
}

/* A charset label as found in a parameter: trimmed of white space and
 * quotes. Returns NULL when nothing usable remains. */
static char *
clean_declared_name (const char *declared)
{
  if (declared == NULL)
    return NULL;
  while (*declared == ' ' || *declared == '\t' || *declared == '"' || *declared == '\'')
    declared++;
  gsize len = strlen (declared);
  while (len > 0 && (declared[len - 1] == ' ' || declared[len - 1] == '\t'
                     || declared[len - 1] == '"' || declared[len - 1] == '\''))
    len--;
  if (len == 0)
    return NULL;
  return g_strndup (declared, len);
}

/* Could iconv be handed this name without surprises? */
static gboolean
is_plausible_name (const char *name)
{
  if (strlen (name) > CHARSET_NAME_MAX)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!(g_ascii_isalnum (*p) || *p == '-' || *p == '_' || *p == '.' || *p == ':'
          || *p == '+' || *p == '(' || *p == ')'))
      return FALSE;
  return TRUE;
}

typedef struct {
  gsize invalid_bytes;      /* bytes that are not part of valid UTF-8 */
  gsize non_ascii_bytes;    /* bytes >= 0x80 */
  gboolean only_cut_tail;   /* the only flaw is a sequence cut at the end */
} Utf8Survey;

/* Length of the sequence a UTF-8 lead byte announces, 0 if not a lead. */
static guint
utf8_sequence_length (guchar lead)
{
  if (lead >= 0xc2 && lead <= 0xdf)
    return 2;
  if (lead >= 0xe0 && lead <= 0xef)
    return 3;
  if (lead >= 0xf0 && lead <= 0xf4)
    return 4;
  return 0;
}

/* Is bytes[0..length) the valid beginning of one UTF-8 sequence? */
static gboolean
is_cut_utf8_sequence (const guchar *bytes, gsize length)
{
  guint need = utf8_sequence_length (bytes[0]);
  if (need == 0 || length >= need)
    return FALSE;
  for (gsize i = 1; i < length; i++)
    if ((bytes[i] & 0xc0) != 0x80)
      return FALSE;
  return TRUE;
}

/* Walks the bytes once; NUL counts as valid (it is replaced later, and a
 * NUL is no reason to think the text is not UTF-8). */
static Utf8Survey
survey_utf8 (const char *bytes, gsize length)
{
  Utf8Survey survey = { 0, 0, FALSE };
  gsize cut_bytes = 0;
  const char *p = bytes;
  const char *end = bytes + length;

  for (gsize i = 0; i < length; i++)
    if ((guchar) bytes[i] >= 0x80)
      survey.non_ascii_bytes++;

  while (p < end)
    {
      const char *valid_end;
      g_utf8_validate_len (p, (gsize) (end - p), &valid_end);
      p = valid_end;
      if (p >= end)
        break;
      if (*p == '\0')
        {
          p++;
          continue;
        }
      if (is_cut_utf8_sequence ((const guchar *) p, (gsize) (end - p)))
        {
          cut_bytes = (gsize) (end - p);
          survey.invalid_bytes += cut_bytes;
          break;
        }
      survey.invalid_bytes++;
      p++;
    }
  /* A lone 8-bit byte at the end is no evidence of UTF-8; a cut sequence
   * after other valid multi-byte sequences is. */
  survey.only_cut_tail = cut_bytes > 0 && survey.invalid_bytes == cut_bytes
                         && survey.non_ascii_bytes > cut_bytes;
  return survey;
}

/* Valid UTF-8 from bytes already known to be (mostly) UTF-8: invalid bytes
 * and NULs become U+FFFD. */
static char *
repair_utf8 (const char *bytes, gsize length)
{
  if (length == 0)
    return g_strdup ("");
  return g_utf8_make_valid (bytes, (gssize) length);
}

static void
add_warning (GPtrArray *warnings, char *sentence)
{
  if (warnings != NULL)
    g_ptr_array_add (warnings, sentence);
  else
    g_free (sentence);
}

/* Converts the whole input from charset (an iconv name) or returns NULL.
 * *unknown is set when iconv does not know the charset at all. */
static char *
convert_whole (const char *bytes, gsize length, const char *charset, gboolean *unknown)
{
  g_autoptr (GError) error = NULL;
  gsize bytes_read = 0, bytes_written = 0;

  *unknown = FALSE;
  GIConv converter = g_iconv_open ("UTF-8", charset);
  if (converter == (GIConv) -1)
    {
      *unknown = TRUE;
      return NULL;
    }
  if (length == 0)
    {
      g_iconv_close (converter);
      return g_strdup ("");
    }

  char *out = g_convert_with_iconv (bytes, (gssize) length, converter,
                                    &bytes_read, &bytes_written, &error);
  g_iconv_close (converter);
  if (out == NULL)
    return NULL;
  if (bytes_read != length)
    {
      g_free (out);
      return NULL;
    }
  /* iconv output is valid UTF-8 but may hold U+0000. */
  if (memchr (out, '\0', bytes_written) != NULL || !g_utf8_validate_len (out, bytes_written, NULL))
    {
      char *repaired = repair_utf8 (out, bytes_written);
      g_free (out);
      return repaired;
    }
  return out;
}

/* Tries text as UTF-8; accepts a cut last character always, and a few
 * broken bytes when the sender said UTF-8. */
static char *
try_utf8 (const char *bytes, gsize length, gboolean declared_utf8, GPtrArray *warnings)
{
  Utf8Survey survey = survey_utf8 (bytes, length);

  /* Valid already (the common case): a copy, without validating again. */
  if (survey.invalid_bytes == 0 && memchr (bytes, '\0', length) == NULL)
    return g_strndup (bytes, length);
  if (survey.invalid_bytes == 0 || survey.only_cut_tail)
    return repair_utf8 (bytes, length);
  if (declared_utf8
      && survey.invalid_bytes * UTF8_TOLERANCE_DIVISOR <= survey.non_ascii_bytes)
    {
      add_warning (warnings, g_strdup_printf ("%" G_GSIZE_FORMAT " invalid UTF-8 bytes "
                                              "replaced with U+FFFD", survey.invalid_bytes));
      return repair_utf8 (bytes, length);
    }
  return NULL;
}

char *
tm_charset_to_utf8 (const char *bytes, gsize length, const char *declared,
                    const char *const *fallbacks, GPtrArray *warnings)
{
  g_return_val_if_fail (bytes != NULL || length == 0, NULL);

  tm_message_library_init ();

  if (length == 0)
    bytes = "";

  g_autofree char *declared_clean = clean_declared_name (declared);
  const char *declared_iconv = NULL;   /* set when the declared name is usable */
  gboolean tried_utf8 = FALSE;
  gboolean declared_failed = FALSE;    /* known charset, but bytes did not fit */
  char *result = NULL;

  if (declared_clean != NULL && is_undeclared_name (declared_clean))
    g_clear_pointer (&declared_clean, g_free);

  /* 1. The declared charset. */
  if (declared_clean != NULL)
    {
      gboolean unknown = !is_plausible_name (declared_clean);
      if (!unknown)
        {
          declared_iconv = g_mime_charset_iconv_name (declared_clean);
          if (is_utf8_name (declared_iconv))
            {
              tried_utf8 = TRUE;
              result = try_utf8 (bytes, length, TRUE, warnings);
            }
          else
            result = convert_whole (bytes, length, declared_iconv, &unknown);
        }
      if (result != NULL)
        return result;
      if (unknown)
        {
          g_autofree char *shown = printable_name (declared_clean);
          add_warning (warnings, g_strdup_printf ("unknown charset \"%s\"", shown));
          declared_iconv = NULL;
        }
      else
        declared_failed = TRUE;
    }

  /* 2. UTF-8, then 3. the fallbacks, skipping what was tried already. */
  const char *used = NULL;
  if (!tried_utf8)
    {
      tried_utf8 = TRUE;
      result = try_utf8 (bytes, length, FALSE, warnings);
      used = "UTF-8";
    }
  for (guint i = 0; result == NULL && fallbacks != NULL && fallbacks[i] != NULL; i++)
    {
      const char *name = g_mime_charset_iconv_name (fallbacks[i]);
      gboolean unknown = FALSE;
      if (is_utf8_name (name) || (declared_iconv != NULL && g_ascii_strcasecmp (name, declared_iconv) == 0))
        continue;
      result = convert_whole (bytes, length, name, &unknown);
      used = fallbacks[i];
    }

  if (result != NULL)
    {
      if (declared_failed)
        {
          g_autofree char *shown = printable_name (declared_clean);
          g_autofree char *shown_used = printable_name (used);
          add_warning (warnings, g_strdup_printf ("text does not fit charset \"%s\"; "
                                                  "decoded as \"%s\"", shown, shown_used));
        }
      return result;
    }

  /* 4. Last resort. */
  if (declared_failed)
    {
      g_autofree char *shown = printable_name (declared_clean);
      add_warning (warnings, g_strdup_printf ("text does not fit charset \"%s\"; undecodable "
                                              "bytes replaced with U+FFFD", shown));
    }
  else
    add_warning (warnings, g_strdup ("undecodable bytes replaced with U+FFFD"));
  return repair_utf8 (bytes, length);
}
