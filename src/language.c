/* language.c - choose the language of the answer to a customer: a rule's
 * choice, the Content-Language header, the script of the mail, or the
 * queue's default, in that order (language.h has the rule in full).
 *
 * Synopsis:
 *   const char *const available[] = { "ar", "en", "fa", NULL };
 *   TmLanguageSource source;
 *   g_autofree char *language = tm_language_choose (NULL, "ar-SA, en", subject,
 *                                                   body, available, "en", &source);
 *
 * Script detection counts letters (Unicode general category L*) in the
 * subject and the body: a letter of the Arabic script counts as Arabic, and
 * one of the six letters that Persian has and Arabic does not (pe, tcheh, jeh,
 * gaf, Farsi yeh, keheh, also in their presentation forms) counts as Persian.
 * Arabic script must make up at least a quarter of the letters; then any
 * Persian letter at all makes the text "fa", otherwise it is "ar".
 *
 * That "any" is deliberate (it is the rule the issue gives): an Arabic mail
 * quoting one Persian word is answered in Persian. The other way round is the
 * worse mistake - Persian written without pe, tcheh, jeh and gaf is rare,
 * while Persian keyboards put keheh and Farsi yeh into almost every word - so
 * a threshold would misread short Persian mails as Arabic more often than the
 * rule misreads Arabic ones. Urdu and other languages that share these
 * letters are also answered in Persian; they have no templates of their own.
 *
 * Limits: at most the first 64 KiB (TM_LANGUAGE_SCAN_BYTES) of the subject
 * and of the body are looked at, each; invalid UTF-8 is skipped a byte at a
 * time. Content-Language is read up to its first 32 distinct tags (a real
 * header has one or two).
 *
 * Ownership: tm_language_from_script() and tm_language_source_name() return
 * static strings; the others return new memory for the caller. Everything
 * here is pure, so any thread may call it.
 */
#include "language.h"

#include <string.h>

/* How much of one text the script detection reads (language.h). */
#define TM_LANGUAGE_SCAN_BYTES (64 * 1024)
/* A Content-Language header with more tags than this is junk after it. */
#define MAX_HEADER_TAGS 32

typedef struct {
  gsize letters;             /* every letter, any script */
  gsize arabic_script;       /* letters of the Arabic script */
  gsize persian_only;        /* of those, letters Arabic does not use */
} ScriptCount;

const char *
tm_language_source_name (TmLanguageSource source)
{
  switch (source)
    {
    case TM_LANGUAGE_FROM_RULE:
      return "rule";
    case TM_LANGUAGE_FROM_CONTENT_LANGUAGE:
      return "content-language";
    case TM_LANGUAGE_FROM_SCRIPT:
      return "script";
    case TM_LANGUAGE_FROM_QUEUE_DEFAULT:
      return "queue-default";
    }
  g_return_val_if_reached ("unknown");
}

static gboolean
is_persian_base_letter (gunichar c)
{
  return c == 0x067E     /* pe */
    || c == 0x0686       /* tcheh */
    || c == 0x0698       /* jeh */
    || c == 0x06AF       /* gaf */
    || c == 0x06CC       /* Farsi yeh */
    || c == 0x06A9;      /* keheh */
}

static gboolean
is_persian_only_letter (gunichar c)
{
  if (is_persian_base_letter (c))
    return TRUE;
  /* Old software still sends presentation forms (isolated, final, initial,
   * medial shapes); they decompose to the base letter. */
  if ((c >= 0xFB50 && c <= 0xFDFF) || (c >= 0xFE70 && c <= 0xFEFF))
    {
      gunichar decomposed[G_UNICHAR_MAX_DECOMPOSITION_LENGTH];
      gsize length = g_unichar_fully_decompose (c, TRUE, decomposed, G_N_ELEMENTS (decomposed));
      return length == 1 && is_persian_base_letter (decomposed[0]);
    }
  return FALSE;
}

/* The Arabic block, U+0600..U+06FF, where nearly every letter of an Arabic
 * or Persian mail is: GLib's answers for each code point, asked once, so
 * that the loop below needs no call per letter. */
enum { BLOCK_LETTER = 1, BLOCK_ARABIC_SCRIPT = 2 };
static guint8 arabic_block[256];

static void
arabic_block_init (void)
{
  static gsize done = 0;
  if (!g_once_init_enter (&done))
    return;
  for (gunichar i = 0; i < 256; i++)
    {
      gunichar c = 0x0600 + i;
      arabic_block[i] = (g_unichar_isalpha (c) ? BLOCK_LETTER : 0)
                        | (g_unichar_get_script (c) == G_UNICODE_SCRIPT_ARABIC ? BLOCK_ARABIC_SCRIPT : 0);
    }
  g_once_init_leave (&done, 1);
}

static void
count_letter (ScriptCount *count, gunichar c, gboolean arabic_script)
{
  count->letters++;
  if (arabic_script)
    {
      count->arabic_script++;
      if (is_persian_only_letter (c))
        count->persian_only++;
    }
}

static void
count_script (ScriptCount *count, const char *text, gssize length)
{
  if (text == NULL)
    return;
  arabic_block_init ();
  gsize size;
  if (length < 0)
    /* Never read past the scan limit looking for the end. */
    size = strnlen (text, TM_LANGUAGE_SCAN_BYTES);
  else
    size = MIN ((gsize) length, (gsize) TM_LANGUAGE_SCAN_BYTES);

  const char *at = text;
  const char *end = text + size;
  while (at < end)
    {
      /* ASCII fast path: most mail is mostly ASCII. */
      if ((guchar) *at < 0x80)
        {
          if (g_ascii_isalpha (*at))
            count->letters++;
          at++;
          continue;
        }
      /* Two-byte sequences D8..DB xx are the Arabic block. */
      guchar lead = (guchar) *at;
      if (lead >= 0xD8 && lead <= 0xDB && end - at >= 2 && ((guchar) at[1] & 0xC0) == 0x80)
        {
          gunichar c = ((gunichar) (lead & 0x1F) << 6) | ((guchar) at[1] & 0x3F);
          at += 2;
          guint8 kind = arabic_block[c - 0x0600];
          if ((kind & BLOCK_LETTER) != 0)
            count_letter (count, c, (kind & BLOCK_ARABIC_SCRIPT) != 0);
          continue;
        }
      gunichar c = g_utf8_get_char_validated (at, end - at);
      if (c == (gunichar) -1 || c == (gunichar) -2)
        {
          /* Invalid, or cut by the scan limit: skip the byte. */
          at++;
          continue;
        }
      at = g_utf8_next_char (at);
      if (g_unichar_isalpha (c))
        count_letter (count, c, g_unichar_get_script (c) == G_UNICODE_SCRIPT_ARABIC);
    }
}

static const char *
language_of_count (const ScriptCount *count)
{
  /* At least a quarter of the letters, so that one Arabic name in an
   * English mail does not decide. */
  if (count->arabic_script == 0 || count->arabic_script * 4 < count->letters)
    return NULL;
  return count->persian_only > 0 ? "fa" : "ar";
}

const char *
tm_language_from_script (const char *text, gssize length)
{
  g_return_val_if_fail (text != NULL || length == 0, NULL);
  ScriptCount count = { 0 };
  count_script (&count, text, length);
  return language_of_count (&count);
}

/* The primary subtag of one Content-Language entry, lower-cased, or NULL
 * when the entry is not a language tag. */
static char *
primary_subtag (const char *entry)
{
  g_autoptr (GString) cleaned = g_string_new (NULL);
  /* RFC 3282 allows comments; Accept-Language habits bring ";q=" along. */
  int comment_depth = 0;
  for (const char *c = entry; *c != '\0' && *c != ';'; c++)
    {
      if (*c == '(')
        comment_depth++;
      else if (*c == ')' && comment_depth > 0)
        comment_depth--;
      else if (comment_depth == 0)
        g_string_append_c (cleaned, *c);
    }
  g_strstrip (cleaned->str);
  const char *tag = cleaned->str;
  if (*tag == '\0')
    return NULL;
  /* The whole tag must look like one: letters, digits and '-' (or the
   * POSIX-locale '_' some clients send). */
  for (const char *c = tag; *c != '\0'; c++)
    if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_')
      return NULL;
  gsize primary_length = strcspn (tag, "-_");
  /* BCP 47 primary language subtags are 2-8 letters; "i-" and "x-" (single
   * letters) are grandfathered and private-use tags, never ours. */
  if (primary_length < 2 || primary_length > 8)
    return NULL;
  for (gsize i = 0; i < primary_length; i++)
    if (!g_ascii_isalpha (tag[i]))
      return NULL;
  return g_ascii_strdown (tag, (gssize) primary_length);
}

char **
tm_language_tags_from_header (const char *content_language)
{
  g_autoptr (GPtrArray) tags = g_ptr_array_new_with_free_func (g_free);
  if (content_language != NULL)
    {
      g_auto (GStrv) entries = g_strsplit (content_language, ",", -1);
      for (gsize i = 0; entries[i] != NULL && tags->len < MAX_HEADER_TAGS; i++)
        {
          g_autofree char *tag = primary_subtag (entries[i]);
          if (tag == NULL)
            continue;
          gboolean seen = FALSE;
          for (guint j = 0; j < tags->len && !seen; j++)
            seen = strcmp (g_ptr_array_index (tags, j), tag) == 0;
          if (!seen)
            g_ptr_array_add (tags, g_steal_pointer (&tag));
        }
    }
  g_ptr_array_add (tags, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&tags), FALSE);
}

/* The spelling of LANGUAGE in AVAILABLE, or NULL when it has no templates. */
static const char *
find_available (const char *language, const char *const *available)
{
  if (language == NULL)
    return NULL;
  for (gsize i = 0; available[i] != NULL; i++)
    if (g_ascii_strcasecmp (available[i], language) == 0)
      return available[i];
  return NULL;
}

static char *
chosen (const char *language, TmLanguageSource from, TmLanguageSource *source)
{
  if (source != NULL)
    *source = from;
  return g_strdup (language);
}

/* A rule's language counts only when it has templates, like every other
 * source but the queue default (language.h): an acknowledgement in a
 * language without templates could not be written at all. */
char *
tm_language_choose (const char *rule_language, const char *content_language,
                    const char *subject, const char *body,
                    const char *const *available, const char *queue_default,
                    TmLanguageSource *source)
{
  g_return_val_if_fail (subject != NULL, NULL);
  g_return_val_if_fail (available != NULL, NULL);
  g_return_val_if_fail (queue_default != NULL, NULL);

  const char *found = find_available (rule_language, available);
  if (found != NULL)
    return chosen (found, TM_LANGUAGE_FROM_RULE, source);

  g_auto (GStrv) tags = tm_language_tags_from_header (content_language);
  for (gsize i = 0; tags[i] != NULL; i++)
    {
      found = find_available (tags[i], available);
      if (found != NULL)
        return chosen (found, TM_LANGUAGE_FROM_CONTENT_LANGUAGE, source);
    }

  ScriptCount count = { 0 };
  count_script (&count, subject, -1);
  count_script (&count, body, -1);
  found = find_available (language_of_count (&count), available);
  if (found != NULL)
    return chosen (found, TM_LANGUAGE_FROM_SCRIPT, source);

  return chosen (queue_default, TM_LANGUAGE_FROM_QUEUE_DEFAULT, source);
}

gboolean
tm_language_tag_is_valid (const char *tag)
{
  g_return_val_if_fail (tag != NULL, FALSE);
  gsize length = strlen (tag);
  if (length < 2 || length > 16 || !g_ascii_isalpha (tag[0]))
    return FALSE;
  for (const char *c = tag; *c != '\0'; c++)
    if (!g_ascii_isalnum (*c) && *c != '-')
      return FALSE;
  return TRUE;
}
