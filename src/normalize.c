/* normalize.c - the form in which text is compared with rules.
 *
 * tm_text_normalize (text, length, flags) returns a new string:
 *   1. invalid UTF-8 (and NUL bytes inside LENGTH) become U+FFFD, so
 *      hostile mail never reaches the Unicode functions unchecked;
 *   2. NFKC (g_utf8_normalize), which turns presentation forms, ligatures,
 *      full-width letters and NBSP into the plain characters;
 *   3. one pass over the characters that folds the Arabic and Persian
 *      spellings listed in normalize.h (yeh, kaf, alef, teh marbuta and heh
 *      goal, digits) and drops the characters that only decorate or steer
 *      text (tatweel, harakat, Quranic marks, ZWNJ/ZWJ, LRM/RLM, soft hyphen);
 *   4. case folding as g_utf8_casefold unless TM_NORMALIZE_KEEP_CASE
 *      ("REFUND" -> "refund", "STRASSE"/"Straße" -> "strasse").
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
 * Case folding runs last (the Arabic folding and case folding commute:
 * neither produces a character the other changes), so tm_text_fold_case
 * can turn the KEEP_CASE form into the default one, and it skips GLib's
 * per-character table search for ASCII and the Arabic block, which
 * g_utf8_casefold maps to themselves (or to lower-case ASCII).
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
 * tm_text_word_at (haystack, offset, needle) is the check above at one
 * place, for a caller that knows where the needle's first word stands
 * (rules.c keeps an index of a mail's words).
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

/* g_utf8_get_char for valid UTF-8, with the one- and two-byte forms (all of
 * ASCII, Arabic and Persian) decoded in line: this runs for every character
 * of every mail. */
static inline gunichar
valid_char_at (const char *p)
{
  guchar lead = (guchar) p[0];
  if (lead < 0x80)
    return lead;
  if (lead < 0xE0)
    return ((gunichar) (lead & 0x1F) << 6) | ((guchar) p[1] & 0x3F);
  return g_utf8_get_char (p);
}

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
      gunichar c = valid_char_at (p);
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

/* Characters g_utf8_casefold leaves alone and that are common in mail here:
 * the Arabic block (test-normalize.c checks the premise against GLib). */
static gboolean
is_caseless_fast (gunichar c)
{
  return c >= 0x0600 && c <= 0x06FF;
}

char *
tm_text_fold_case (const char *text)
{
  g_return_val_if_fail (text != NULL, NULL);
  g_return_val_if_fail (g_utf8_validate (text, -1, NULL), NULL);

  /* g_utf8_casefold maps each character on its own, so it may be applied
   * piecewise; ASCII and Arabic runs, most of the text, skip its per
   * character table search. */
  GString *out = g_string_sized_new (strlen (text) + 1);
  const char *p = text;
  while (*p != '\0')
    {
      if ((guchar) *p < 0x80)
        {
          g_string_append_c (out, g_ascii_tolower (*p));
          p++;
          continue;
        }
      const char *run = p;
      while (*p != '\0' && (guchar) *p >= 0x80 && is_caseless_fast (valid_char_at (p)))
        p = g_utf8_next_char (p);
      if (p != run)
        {
          g_string_append_len (out, run, p - run);
          continue;
        }
      while (*p != '\0' && (guchar) *p >= 0x80 && !is_caseless_fast (valid_char_at (p)))
        p = g_utf8_next_char (p);
      g_autofree char *folded = g_utf8_casefold (run, p - run);
      g_string_append (out, folded);
    }
  return g_string_free (out, FALSE);
}

char *
tm_text_normalize (const char *text, gssize length, TmNormalizeFlags flags)
{
  g_return_val_if_fail (text != NULL, NULL);

  g_autofree char *valid = g_utf8_make_valid (text, length);
  g_autofree char *composed = nfkc (valid);

  /* Most characters stay as they are: copy runs of them whole. */
  GString *out = g_string_sized_new (strlen (composed) + 1);
  const char *copied_to = composed;
  const char *p = composed;
  while (*p != '\0')
    {
      if ((guchar) *p < 0x80)
        {
          p++;
          continue;
        }
      gunichar original = valid_char_at (p);
      const char *next = g_utf8_next_char (p);
      gunichar c = fold_char (original);
      if (c != original)
        {
          g_string_append_len (out, copied_to, p - copied_to);
          if (c != 0)
            g_string_append_unichar (out, c);
          copied_to = next;
        }
      p = next;
    }
  g_string_append_len (out, copied_to, p - copied_to);
  if ((flags & TM_NORMALIZE_KEEP_CASE) != 0)
    return g_string_free (out, FALSE);
  /* Case folding after the Arabic folding gives the same text as before it
   * (neither produces what the other changes; test-normalize.c checks every
   * code point), and lets tm_text_fold_case turn the KEEP_CASE form into
   * this one. */
  g_autofree char *kept_case = g_string_free (out, FALSE);
  return tm_text_fold_case (kept_case);
}

/* A letter, mark or digit: a character that continues a word. */
static gboolean
is_word_char (gunichar c)
{
  if (c < 0x80)  /* the GLib tables say the same for ASCII, at a fraction of the cost */
    return g_ascii_isalnum ((char) c);
  return g_unichar_isalpha (c) || g_unichar_ismark (c) || g_unichar_isdigit (c);
}

gboolean
tm_unichar_is_word (gunichar c)
{
  return is_word_char (c);
}

gboolean
tm_unichar_breaks_line (gunichar c)
{
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029;
}

gunichar
tm_text_char_at (const char *p)
{
  if ((guchar) *p < 0x80)
    return (guchar) *p;
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
  gunichar c = tm_text_char_at (previous);
  return c == (gunichar) -1 || !is_word_char (c);
}

static gboolean
boundary_at (const char *position)
{
  if (*position == '\0')
    return TRUE;
  gunichar c = tm_text_char_at (position);
  return c == (gunichar) -1 || !is_word_char (c);
}

/* g_unichar_isspace, without a table look-up for ASCII. */
static gboolean
is_space (gunichar c)
{
  if (c < 0x80)
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
  return g_unichar_isspace (c);
}

/* The end of the white-space run at P (P itself when there is none). */
static const char *
skip_space (const char *p)
{
  while (*p != '\0')
    {
      gunichar c = tm_text_char_at (p);
      if (c == (gunichar) -1 || !is_space (c))
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
      /* U+0100..U+07FF holds no white space: skip such a character (when
       * it is valid) without decoding it. */
      if ((guchar) p[0] >= 0xC4 && (guchar) p[0] <= 0xDF && ((guchar) p[1] & 0xC0) == 0x80)
        {
          p += 2;
          continue;
        }
      gunichar c = tm_text_char_at (p);
      if (c != (gunichar) -1 && is_space (c))
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

gboolean
tm_text_word_at (const char *haystack, gsize offset, const char *needle)
{
  g_return_val_if_fail (haystack != NULL, FALSE);
  g_return_val_if_fail (needle != NULL, FALSE);

  const char *position = haystack + offset;
  if (!boundary_before (haystack, position))
    return FALSE;
  /* The same steps as tm_text_find_word at one hit, without its arrays:
   * the first word right here, each later one after a white-space run. */
  const char *cursor = position;
  gboolean first = TRUE;
  for (const char *word = skip_space (needle); *word != '\0'; word = skip_space (word))
    {
      const char *word_end = skip_word (word);
      gsize word_length = (gsize) (word_end - word);
      if (!first)
        {
          const char *after_space = skip_space (cursor);
          if (after_space == cursor)
            return FALSE;
          cursor = after_space;
        }
      if (strncmp (cursor, word, word_length) != 0)
        return FALSE;
      cursor += word_length;
      first = FALSE;
      word = word_end;
    }
  return !first && boundary_at (cursor);
}
