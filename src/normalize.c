/* normalize.c - the form in which text is compared with rules.
 *
 * tm_text_normalize (text, length, flags) returns a new string:
 *   1. invalid UTF-8 (and NUL bytes inside LENGTH) become U+FFFD, so
 *      hostile mail never reaches the Unicode functions unchecked;
 *   2. NFKC (g_utf8_normalize), which turns presentation forms, ligatures,
 *      full-width letters and NBSP into the plain characters;
 *   3. g_utf8_casefold unless TM_NORMALIZE_KEEP_CASE ("REFUND" -> "refund",
 *      "STRASSE"/"Straße" -> "strasse");
 *   4. one pass over the characters that folds the Arabic and Persian
 *      spellings listed in normalize.h (yeh, kaf, alef, teh marbuta and heh
 *      goal, digits) and drops the characters that only decorate or steer
 *      text (tatweel, harakat, Quranic marks, ZWNJ/ZWJ, LRM/RLM, soft hyphen).
 * The folding runs after NFKC because NFKC is what turns U+FEFB into
 * lam + alef and U+FE94 into teh marbuta: the folding must see the
 * plain letters. Cost: linear in the text, about four copies of it.
 * g_utf8_normalize costs about 100 ns a byte, so NFKC is applied only to
 * the pieces of text that need it: text is cut before every "stable"
 * character below U+0800 (one that NFKC never changes nor combines with
 * what precedes it; see build_stable_table), and only pieces holding some
 * other character are normalised. A 256 KiB Persian body takes about 7 ms
 * instead of 35 ms.
 *
 * tm_text_find_word (haystack, needle) splits the needle at white space
 * into words and looks for the first word with strstr; at each hit it
 * checks the character before, then each following word after a run of
 * at least one white-space character, then the character after the last
 * word. A boundary holds at either end of the haystack and next to any
 * character that is not a letter, a mark or a digit (g_unichar_isalpha,
 * g_unichar_ismark, g_unichar_isdigit), so punctuation, symbols, white
 * space and U+FFFD all separate words. Worst case is O(haystack * needle)
 * for pathological repetitions, as with strstr; needles are short rule
 * words. Bytes that are not valid UTF-8 (a caller that skipped
 * normalisation) count as boundaries and are never read past the NUL.
 *
 * Limits: no stemming, no plurals ("refund" does not match "refunds"), and
 * ZWNJ is dropped rather than turned into a space, so "می‌خواهم" becomes one
 * word "میخواهم" (as Persian readers see it), not "می" + "خواهم".
 *
 * Ownership: every returned string is new and the caller frees it.
 * Thread safety: no state; every function may run in many threads.
 */
#include "normalize.h"

#include <string.h>

/* The folded form of C, or 0 when C is dropped. */
static gunichar
fold_char (gunichar c)
{
  switch (c)
    {
    case 0x06CC: case 0x0649: case 0x06D2:          /* Persian yeh, alef maksura, yeh barree */
      return 0x064A;
    case 0x06A9:                                    /* keheh (Persian kaf) */
      return 0x0643;
    case 0x0623: case 0x0625: case 0x0622:          /* alef with hamza above/below, madda */
    case 0x0671: case 0x0672: case 0x0673:          /* alef wasla, wavy hamza forms */
      return 0x0627;
    case 0x0629: case 0x06C1: case 0x06D5:          /* teh marbuta, heh goal, ae */
      return 0x0647;
    case 0x0640:                                    /* tatweel */
    case 0x0670:                                    /* superscript alef */
    case 0x200C: case 0x200D:                       /* ZWNJ, ZWJ */
    case 0x200E: case 0x200F:                       /* LRM, RLM */
    case 0x00AD:                                    /* soft hyphen */
      return 0;
    default:
      break;
    }
  if (c >= 0x064B && c <= 0x065F)                   /* harakat and other combining marks */
    return 0;
  if (c >= 0x06D6 && c <= 0x06ED)                   /* Quranic annotation marks */
    return 0;
  if (c >= 0x0660 && c <= 0x0669)                   /* Arabic-Indic digits */
    return '0' + (c - 0x0660);
  if (c >= 0x06F0 && c <= 0x06F9)                   /* Extended (Persian) digits */
    return '0' + (c - 0x06F0);
  return c;
}

/* Code points below U+0800 (ASCII, Latin, Greek, Cyrillic, Hebrew, Arabic,
 * Syriac, Thaana) that NFKC leaves alone wherever they stand: combining
 * class 0, no canonical or compatibility decomposition, and never the second
 * character of a canonical composition (true of every class-0 character
 * below U+0800; test-normalize.c checks it against GLib's tables). Such a
 * character is a safe point: NFKC of the text equals NFKC of the pieces cut
 * before each safe point. One bit per code point, built once. */
#define STABLE_TABLE_END 0x800
static guint8 stable_table[STABLE_TABLE_END / 8];

static gpointer
build_stable_table (gpointer unused)
{
  for (gunichar c = 1; c < STABLE_TABLE_END; c++)
    {
      gunichar decomposition[G_UNICHAR_MAX_DECOMPOSITION_LENGTH];
      if (g_unichar_combining_class (c) == 0
          && g_unichar_fully_decompose (c, TRUE, decomposition, G_N_ELEMENTS (decomposition)) == 1
          && decomposition[0] == c)
        stable_table[c / 8] |= (guint8) (1u << (c % 8));
    }
  return NULL;
}

static gboolean
is_stable (gunichar c)
{
  return c < STABLE_TABLE_END && (stable_table[c / 8] & (1u << (c % 8))) != 0;
}

/* NFKC of valid UTF-8 TEXT. g_utf8_normalize is slow (about 100 ns a byte,
 * most of a 256 KiB body's cost), so only the pieces that contain a
 * character that is not stable go through it; the rest is copied. */
static char *
nfkc (const char *text)
{
  static GOnce table_once = G_ONCE_INIT;
  g_once (&table_once, build_stable_table, NULL);

  GString *out = g_string_sized_new (strlen (text) + 1);
  const char *copied_to = text;   /* bytes before this are in OUT */
  const char *segment = text;     /* the piece that starts at the last safe point */
  gboolean segment_unstable = FALSE;
  const char *p = text;
  for (;;)
    {
      gunichar c = g_utf8_get_char (p);
      gboolean safe_point = c == 0 || is_stable (c);
      if (safe_point && segment_unstable)
        {
          g_string_append_len (out, copied_to, segment - copied_to);
          g_autofree char *normalized = g_utf8_normalize (segment, p - segment, G_NORMALIZE_NFKC);
          if (normalized != NULL)
            g_string_append (out, normalized);
          else  /* cannot happen on valid UTF-8; keep the piece as it was */
            g_string_append_len (out, segment, p - segment);
          copied_to = p;
        }
      if (c == 0)
        break;
      if (safe_point)
        {
          segment = p;
          segment_unstable = FALSE;
        }
      else
        segment_unstable = TRUE;
      p = g_utf8_next_char (p);
    }
  g_string_append_len (out, copied_to, p - copied_to);
  return g_string_free (out, FALSE);
}

char *
tm_text_normalize (const char *text, gssize length, TmNormalizeFlags flags)
{
  g_return_val_if_fail (text != NULL, NULL);

  g_autofree char *valid = g_utf8_make_valid (text, length);
  g_autofree char *composed = nfkc (valid);
  g_autofree char *folded = NULL;
  const char *source = composed;
  if ((flags & TM_NORMALIZE_KEEP_CASE) == 0)
    source = folded = g_utf8_casefold (composed, -1);

  GString *out = g_string_sized_new (strlen (source) + 1);
  const char *p = source;
  while (*p != '\0')
    {
      const char *ascii_end = p;
      while (*ascii_end != '\0' && (guchar) *ascii_end < 0x80)
        ascii_end++;
      if (ascii_end != p)
        {
          g_string_append_len (out, p, ascii_end - p);
          p = ascii_end;
          continue;
        }
      gunichar c = fold_char (g_utf8_get_char (p));
      if (c != 0)
        g_string_append_unichar (out, c);
      p = g_utf8_next_char (p);
    }
  return g_string_free (out, FALSE);
}

/* A letter, mark or digit: a character that continues a word. */
static gboolean
is_word_char (gunichar c)
{
  return g_unichar_isalpha (c) || g_unichar_ismark (c) || g_unichar_isdigit (c);
}

/* The character starting at P, or (gunichar) -1 when P is not valid UTF-8.
 * Never reads past a NUL. */
static gunichar
char_at (const char *p)
{
  gunichar c = g_utf8_get_char_validated (p, -1);
  return (c == (gunichar) -1 || c == (gunichar) -2) ? (gunichar) -1 : c;
}

static gboolean
boundary_before (const char *haystack, const char *position)
{
  if (position == haystack)
    return TRUE;
  const char *previous = g_utf8_find_prev_char (haystack, position);
  if (previous == NULL)
    return TRUE;
  gunichar c = char_at (previous);
  return c == (gunichar) -1 || !is_word_char (c);
}

static gboolean
boundary_at (const char *position)
{
  if (*position == '\0')
    return TRUE;
  gunichar c = char_at (position);
  return c == (gunichar) -1 || !is_word_char (c);
}

/* The end of the white-space run at P (P itself when there is none). */
static const char *
skip_space (const char *p)
{
  while (*p != '\0')
    {
      gunichar c = char_at (p);
      if (c == (gunichar) -1 || !g_unichar_isspace (c))
        break;
      p = g_utf8_next_char (p);
    }
  return p;
}

/* The end of the word starting at P: the first white space or NUL. */
static const char *
skip_word (const char *p)
{
  while (*p != '\0')
    {
      gunichar c = char_at (p);
      if (c != (gunichar) -1 && g_unichar_isspace (c))
        break;
      p = (c == (gunichar) -1) ? p + 1 : g_utf8_next_char (p);
    }
  return p;
}

gssize
tm_text_find_word (const char *haystack, const char *needle)
{
  g_return_val_if_fail (haystack != NULL, -1);
  g_return_val_if_fail (needle != NULL, -1);

  /* The needle's words as [start, end) pairs. */
  g_autoptr (GArray) words = g_array_new (FALSE, FALSE, sizeof (const char *));
  for (const char *p = skip_space (needle); *p != '\0'; p = skip_space (p))
    {
      const char *end = skip_word (p);
      g_array_append_val (words, p);
      g_array_append_val (words, end);
      p = end;
    }
  if (words->len == 0)
    return -1;

  const char *first = g_array_index (words, const char *, 0);
  gsize first_length = (gsize) (g_array_index (words, const char *, 1) - first);
  g_autofree char *first_word = g_strndup (first, first_length);

  for (const char *hit = strstr (haystack, first_word); hit != NULL;
       hit = strstr (hit + 1, first_word))
    {
      if (!boundary_before (haystack, hit))
        continue;
      const char *cursor = hit + first_length;
      gboolean matched = TRUE;
      for (guint i = 2; i < words->len && matched; i += 2)
        {
          const char *word = g_array_index (words, const char *, i);
          gsize word_length = (gsize) (g_array_index (words, const char *, i + 1) - word);
          const char *after_space = skip_space (cursor);
          if (after_space == cursor || strncmp (after_space, word, word_length) != 0)
            matched = FALSE;
          else
            cursor = after_space + word_length;
        }
      if (matched && boundary_at (cursor))
        return hit - haystack;
    }
  return -1;
}
