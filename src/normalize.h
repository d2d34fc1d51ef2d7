/* normalize.h - the form in which text is compared with rules.
 *
 * Customers write the same Arabic or Persian word in many ways: with or
 * without harakat, with tatweel for looks, with Persian or Arabic yeh and
 * kaf, with or without hamza on the alef, teh marbuta or heh, Arabic-Indic,
 * Persian or ASCII digits, a zero-width non-joiner or not. Rules should not
 * have to list every spelling, so both the rule's words and the mail's text
 * are brought to one form before they meet:
 *
 *   - Unicode compatibility composition (NFKC): presentation forms
 *     (U+FB50..U+FDFF, U+FE70..U+FEFF) become the plain letters;
 *   - case folded (g_utf8_casefold) unless TM_NORMALIZE_KEEP_CASE;
 *   - yeh:  U+064A ي, U+06CC ی, U+0649 ى, U+06D2 ے    -> U+064A ي
 *   - kaf:  U+0643 ك, U+06A9 ک                       -> U+0643 ك
 *   - alef: U+0623 أ, U+0625 إ, U+0622 آ, U+0671 ٱ, U+0672, U+0673 -> U+0627 ا
 *   - teh marbuta U+0629 ة and heh goal U+06C1, U+06D5 -> heh U+0647 ه
 *   - removed: tatweel U+0640, harakat U+064B..U+065F, superscript alef
 *     U+0670, Quranic marks U+06D6..U+06ED, ZWNJ U+200C, ZWJ U+200D,
 *     LRM/RLM U+200E U+200F, soft hyphen U+00AD
 *   - digits: U+0660..U+0669 and U+06F0..U+06F9 -> '0'..'9'
 * Invalid UTF-8 is first made valid (U+FFFD).
 *
 * Word matching: tm_text_contains_word() finds a normalised needle in a
 * normalised haystack only where it starts and ends at word boundaries (the
 * characters on either side are not letters, marks or digits), so "refund"
 * matches "refund!" and "Refunds?" does not match "refund" (use a /regex/
 * for that). A needle of several words matches that phrase with any run of
 * white space between the words.
 *
 * All functions are pure and thread-safe; results are new strings.
 */
#ifndef TM_NORMALIZE_H
#define TM_NORMALIZE_H

#include <glib.h>

typedef enum {
  TM_NORMALIZE_DEFAULT = 0,
  TM_NORMALIZE_KEEP_CASE = 1 << 0,  /* for regex patterns: \W must stay \W */
} TmNormalizeFlags;

/* LENGTH -1 for NUL-terminated. */
char *tm_text_normalize (const char *text, gssize length,
                         TmNormalizeFlags flags) G_GNUC_WARN_UNUSED_RESULT;

/* The TM_NORMALIZE_DEFAULT form of a text whose TM_NORMALIZE_KEEP_CASE form
 * is TEXT: tm_text_fold_case (tm_text_normalize (t, -1, KEEP_CASE)) equals
 * tm_text_normalize (t, -1, DEFAULT), for a caller that needs both forms
 * (case folding only; TEXT must be valid UTF-8). */
char *tm_text_fold_case (const char *text) G_GNUC_WARN_UNUSED_RESULT;

/* Both arguments already normalised. Returns the byte offset of the first
 * match in HAYSTACK, or -1. */
gssize tm_text_find_word (const char *haystack, const char *needle);
#define tm_text_contains_word(h, n) (tm_text_find_word ((h), (n)) >= 0)

/* Whether C continues a word (a letter, mark or digit): the boundary test
 * of tm_text_find_word, for callers that split text into the same words. */
gboolean tm_unichar_is_word (gunichar c);

/* Whether C would break a header or a line wherever it lands: a control
 * character (C0, DEL, C1) or U+2028/U+2029, the line and paragraph
 * separators some readers honour. (ack_mail.c's control_at is the same test
 * made on the bytes, for its hot path.) */
gboolean tm_unichar_breaks_line (gunichar c);

/* The character starting at P, or (gunichar) -1 when P is not valid UTF-8
 * (the caller then steps one byte). Never reads past a NUL. */
gunichar tm_text_char_at (const char *p);

/* Whether tm_text_find_word (HAYSTACK, NEEDLE) would accept a match that
 * starts at byte OFFSET of HAYSTACK (OFFSET <= strlen (HAYSTACK)). Lets a
 * caller that already knows where a needle's first word occurs (an index
 * of the haystack's words) check only those places. */
gboolean tm_text_word_at (const char *haystack, gsize offset, const char *needle);

#endif
