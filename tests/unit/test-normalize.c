/* test-normalize.c - unit tests for normalize.c: one spelling for the many
 * ways customers write a word, and whole-word matching on the result.
 *
 * Most tests state equivalence the way a rule meets a mail: the rule word
 * and the mail text are both normalised, then tm_text_contains_word() is
 * asked. Inputs with invalid UTF-8 are copied into buffers of exactly their
 * length so that AddressSanitizer catches a read past the end.
 */
#include "normalize.h"

#include <string.h>

/* --- helpers ------------------------------------------------------------------ */

static char *
norm (const char *text)
{
  return tm_text_normalize (text, -1, TM_NORMALIZE_DEFAULT);
}

static void
assert_normalizes_to (const char *input, const char *expected)
{
  g_autofree char *result = norm (input);
  g_assert_cmpstr (result, ==, expected);
}

/* Whether the rule word WORD matches somewhere in the mail text TEXT. */
static gboolean
rule_word_matches (const char *word, const char *text)
{
  g_autofree char *needle = norm (word);
  g_autofree char *haystack = norm (text);
  return tm_text_contains_word (haystack, needle);
}

static void
assert_same_form (const char *a, const char *b)
{
  g_autofree char *na = norm (a);
  g_autofree char *nb = norm (b);
  g_assert_cmpstr (na, ==, nb);
}

/* --- Arabic and Persian letters --------------------------------------------- */

static void
test_arabic_teh_marbuta_tatweel_harakat (void)
{
  g_assert_true (rule_word_matches ("فاتورة", "فاتوره"));
  g_assert_true (rule_word_matches ("فاتورة", "فاتـورة"));
  g_assert_true (rule_word_matches ("فاتورة", "فَاتُورَة"));
  g_assert_true (rule_word_matches ("فاتورة", "فـــاتـــوره"));
  g_assert_true (rule_word_matches ("فاتوره", "فاتورة"));
  /* A different word stays different. */
  g_assert_false (rule_word_matches ("فاتورة", "فاتور"));
}

static void
test_persian_kaf_matches_arabic_keyboard (void)
{
  g_assert_true (rule_word_matches ("کارت", "كارت"));
  g_assert_true (rule_word_matches ("كارت", "کارت"));
  assert_same_form ("کارت", "كارت");
}

static void
test_yeh_forms_equal (void)
{
  assert_same_form ("ی", "ي");
  assert_same_form ("ی", "ى");
  assert_same_form ("ے", "ي");
  g_assert_true (rule_word_matches ("علی", "علي"));
  g_assert_true (rule_word_matches ("على", "علی"));
}

static void
test_alef_forms_equal (void)
{
  const char *forms[] = { "أ", "إ", "آ", "ٱ", "\u0672", "\u0673" };
  for (guint i = 0; i < G_N_ELEMENTS (forms); i++)
    assert_normalizes_to (forms[i], "ا");
  g_assert_true (rule_word_matches ("اسم", "إسم"));
  g_assert_true (rule_word_matches ("أحمد", "احمد"));
  /* alef + combining hamza composes to أ under NFKC, then folds. */
  assert_same_form ("\u0627\u0654", "ا");
}

static void
test_heh_goal_and_ae_become_heh (void)
{
  assert_normalizes_to ("\u06C1", "ه");
  assert_normalizes_to ("\u06D5", "ه");
}

static void
test_digits_equal (void)
{
  assert_normalizes_to ("۱۲۳", "123");
  assert_normalizes_to ("١٢٣", "123");
  assert_normalizes_to ("٠٩۰۹", "0909");
  g_assert_true (rule_word_matches ("order 123", "Order ۱۲۳ is late"));
  g_assert_true (rule_word_matches ("١٢٣", "ticket 123"));
}

static void
test_zwnj_and_direction_marks_ignored (void)
{
  assert_same_form ("می\u200Cخواهم", "میخواهم");
  g_assert_true (rule_word_matches ("میخواهم", "من می\u200Cخواهم پول را پس بگیرم"));
  g_assert_true (rule_word_matches ("می\u200Cخواهم", "من میخواهم"));
  assert_normalizes_to ("\u200Er\u200Fe\u200Df\u00ADund", "refund");
}

static void
test_superscript_alef_and_quranic_marks_removed (void)
{
  assert_same_form ("هٰذا", "هذا");
  assert_same_form ("الله\u06D6", "الله");
}

static void
test_presentation_forms_become_letters (void)
{
  /* U+FEFB is the lam-alef ligature, isolated form. */
  assert_normalizes_to ("\uFEFB", "لا");
  /* فاتورة written in presentation forms (final teh marbuta U+FE94). */
  assert_normalizes_to ("\uFED3\uFE8E\uFE97\uFEEE\uFEAE\uFE94", "فاتوره");
  g_assert_true (rule_word_matches ("فاتورة", "\uFED3\uFE8E\uFE97\uFEEE\uFEAE\uFE94"));
  /* The ligature U+FDF2 (Allah) becomes its letters too. */
  g_autofree char *allah = norm ("\uFDF2");
  g_assert_cmpstr (allah, ==, "الله");
}

/* --- case and other scripts ------------------------------------------------- */

static void
test_english_case_folded (void)
{
  g_assert_true (rule_word_matches ("refund", "REFUND"));
  g_assert_true (rule_word_matches ("REFUND", "please Refund me"));
  assert_normalizes_to ("ReFuNd", "refund");
}

static void
test_german_sharp_s_casefolded (void)
{
  assert_same_form ("Straße", "STRASSE");
  g_assert_false (rule_word_matches ("straße", "Hauptstrasse"));
  g_assert_true (rule_word_matches ("straße", "Die STRASSE ist gesperrt"));
}

static void
test_keep_case_flag (void)
{
  g_autofree char *kept = tm_text_normalize ("Refund \\W فاتـورة ١", -1, TM_NORMALIZE_KEEP_CASE);
  g_assert_cmpstr (kept, ==, "Refund \\W فاتوره 1");
}

static void
test_fullwidth_and_nbsp_become_ascii (void)
{
  assert_normalizes_to ("ＲＥＦＵＮＤ", "refund");
  g_assert_true (rule_word_matches ("money back", "money\u00A0back"));
}

/* normalize.c runs NFKC only on the pieces of text that hold a character
 * outside its table of stable characters below U+0800. That is right only if
 * no class-0 character below U+0800 is ever the second half of a canonical
 * composition; check the premise against GLib's Unicode data. */
static void
test_stable_table_premise (void)
{
  for (gunichar c = 0; c <= 0x10FFFF; c++)
    {
      gunichar first = 0, second = 0;
      if (g_unichar_decompose (c, &first, &second) && second != 0 && second < 0x800)
        {
          if (g_unichar_combining_class (second) == 0)
            g_error ("U+%04X composes from U+%04X + U+%04X, a class-0 character below U+0800",
                     c, first, second);
        }
    }
}

/* Piecewise NFKC gives what NFKC of the whole text gives. */
static void
test_piecewise_nfkc_matches_whole (void)
{
  static const char *const pieces[] = {
    "a", "e", "A", " ", "x", "1", "\u0627", "\u0644", "\u0648", "\u064A",
    "\u0301", "\u0327", "\u030A", "\u0308", "\u0654", "\u0655", "\u0653", "\u064E", "\u0651",
    "\u00E9", "\u1E09", "\uFB01", "\uFEFB", "\uFE94", "\u2460", "\uFF21", "\u00A0",
    "\u1100", "\u1161", "\u11A8", "\uAC00", "\u0B47", "\u0B3E", "\u0CC6", "\u0CD5",
    "\u2126", "\u212B", "\u0344", "\u0F73", "\U0001D15E", "\u05B8", "\u05D0",
  };
  static const char *const fixed[] = {
    "cafe\u0301 \u0627\u0654\u0644\u0649", "a\u0301\u0327b", "\u1100\u1161\u11A8!",
    "\u0B47\u0B3E", "\uAC00\u11A8", "x\u0344y", "\uFB01nal \u2460 \u212B",
  };
  GString *text = g_string_new (NULL);
  for (guint round = 0; round < 2000 + G_N_ELEMENTS (fixed); round++)
    {
      g_string_truncate (text, 0);
      if (round < G_N_ELEMENTS (fixed))
        g_string_append (text, fixed[round]);
      else
        for (int i = g_test_rand_int_range (1, 12); i > 0; i--)
          g_string_append (text, pieces[g_test_rand_int_range (0, G_N_ELEMENTS (pieces))]);
      g_autofree char *whole = g_utf8_normalize (text->str, -1, G_NORMALIZE_NFKC);
      g_autofree char *expected = tm_text_normalize (whole, -1, TM_NORMALIZE_KEEP_CASE);
      g_autofree char *result = tm_text_normalize (text->str, -1, TM_NORMALIZE_KEEP_CASE);
      if (g_strcmp0 (result, expected) != 0)
        g_error ("\"%s\": got \"%s\", NFKC of the whole gives \"%s\"", text->str, result, expected);
    }
  g_string_free (text, TRUE);
}

static void
test_length_argument_respected (void)
{
  g_autofree char *result = tm_text_normalize ("REFUND tail", 6, TM_NORMALIZE_DEFAULT);
  g_assert_cmpstr (result, ==, "refund");
}

static void
test_invalid_utf8_does_not_crash (void)
{
  static const char bytes[] = "ref\xff\xfe" "und \xd9 \xe2\x82 \xc0\xaf end";
  gsize length = sizeof bytes - 1;
  char *copy = g_malloc (length);
  memcpy (copy, bytes, length);
  g_autofree char *result = tm_text_normalize (copy, (gssize) length, TM_NORMALIZE_DEFAULT);
  g_free (copy);
  g_assert_true (g_utf8_validate (result, -1, NULL));
  g_assert_nonnull (strstr (result, "\uFFFD"));
  /* U+FFFD separates words: "end" is still found, "refund" is not. */
  g_assert_true (tm_text_contains_word (result, "end"));
  g_assert_false (tm_text_contains_word (result, "refund"));

  /* A NUL byte inside LENGTH becomes U+FFFD rather than ending the text. */
  static const char with_nul[] = { 'a', '\0', 'b' };
  char *nul_copy = g_malloc (sizeof with_nul);
  memcpy (nul_copy, with_nul, sizeof with_nul);
  g_autofree char *nul_result = tm_text_normalize (nul_copy, sizeof with_nul, TM_NORMALIZE_DEFAULT);
  g_free (nul_copy);
  g_assert_cmpstr (nul_result, ==, "a\uFFFDb");

  /* An un-normalised, invalid haystack is not read past its end either, and
   * its stray bytes separate words. */
  char *raw = g_strdup ("\xffx\xd9");
  g_assert_cmpint (tm_text_find_word (raw, "x"), ==, 1);
  g_assert_cmpint (tm_text_find_word (raw, "x \xd9"), ==, -1);
  g_free (raw);
}

static void
test_empty_text (void)
{
  assert_normalizes_to ("", "");
  assert_normalizes_to ("ـــ", "");
  g_assert_false (tm_text_contains_word ("", "refund"));
  g_assert_false (tm_text_contains_word ("refund", ""));
  g_assert_false (tm_text_contains_word ("refund", "   "));
}

/* --- word boundaries ---------------------------------------------------------- */

static void
test_word_boundaries_english (void)
{
  g_assert_true (rule_word_matches ("refund", "refund"));
  g_assert_true (rule_word_matches ("refund", "refund!"));
  g_assert_true (rule_word_matches ("refund", "(refund)"));
  g_assert_true (rule_word_matches ("refund", "I want a refund, now."));
  g_assert_true (rule_word_matches ("refund", "billing/refund"));
  g_assert_false (rule_word_matches ("refund", "refunded"));
  g_assert_false (rule_word_matches ("refund", "nonrefund"));
  g_assert_false (rule_word_matches ("refund", "refund2"));
  g_assert_false (rule_word_matches ("Refunds?", "refund"));
  /* The second occurrence counts when the first is inside a word. */
  g_assert_true (rule_word_matches ("refund", "refunded? no: refund."));
}

static void
test_word_boundaries_arabic (void)
{
  g_assert_true (rule_word_matches ("فاتورة", "أين فاتورة الشهر؟"));
  g_assert_true (rule_word_matches ("فاتورة", "(فاتورة)"));
  g_assert_true (rule_word_matches ("فاتورة", "فاتورة،"));
  /* The article, a suffix or a prefix makes a longer word. */
  g_assert_false (rule_word_matches ("فاتورة", "الفاتورة"));
  g_assert_false (rule_word_matches ("فاتورة", "فاتورتي"));
  g_assert_false (rule_word_matches ("فاتورة", "بفاتورة"));
  /* Harakat removed from the text must not leave a boundary behind. */
  g_assert_false (rule_word_matches ("فاتورة", "الفَاتُورَة"));
}

static void
test_phrase_with_other_white_space (void)
{
  g_assert_true (rule_word_matches ("money back", "I want my money back."));
  g_assert_true (rule_word_matches ("money back", "my money\n  back please"));
  g_assert_true (rule_word_matches ("money back", "MONEY\tBACK"));
  g_assert_true (rule_word_matches ("  money    back ", "money back"));
  g_assert_true (rule_word_matches ("لم يصل", "الطلب لم\nيصل بعد"));
  g_assert_false (rule_word_matches ("money back", "moneyback"));
  g_assert_false (rule_word_matches ("money back", "money backing"));
  g_assert_false (rule_word_matches ("money back", "money, back"));
  g_assert_false (rule_word_matches ("money back", "smoney back"));
}

static void
test_find_word_returns_offset (void)
{
  g_assert_cmpint (tm_text_find_word ("a refund", "refund"), ==, 2);
  g_assert_cmpint (tm_text_find_word ("refunded refund", "refund"), ==, 9);
  g_assert_cmpint (tm_text_find_word ("no", "refund"), ==, -1);
}

/* --- the pieces tm_rules_apply builds on ------------------------------------------------ */

/* Random text from pieces that sit at word boundaries or across them:
 * ASCII and Arabic letters, digits, marks, punctuation, ASCII and other
 * white space (NBSP, line separator), a two-byte Latin letter. */
static char *
random_text (GRand *rand, const char *const *pieces, guint n_pieces, guint max_pieces)
{
  GString *text = g_string_new (NULL);
  guint count = (guint) g_rand_int_range (rand, 0, (gint32) max_pieces + 1);
  for (guint i = 0; i < count; i++)
    g_string_append (text, pieces[g_rand_int_range (rand, 0, (gint32) n_pieces)]);
  return g_string_free (text, FALSE);
}

static void
test_word_at_agrees_with_find_word (void)
{
  static const char *const pieces[] = {
    "a", "b", "ab", " ", "  ", "\t", "\n", ".", "-", "1", "\xd8\xa8" /* ب */,
    "\xd8\xaa" /* ت */, "\xd9\x8e" /* fatha, a mark */, "\xc2\xa0" /* NBSP */,
    "\xe2\x80\xa8" /* line separator */, "\xc3\xa9" /* é */, "\xc3\x97" /* × */,
  };
  g_autoptr (GRand) rand = g_rand_new_with_seed (20261123);
  guint found = 0;
  for (guint round = 0; round < 20000; round++)
    {
      g_autofree char *haystack = random_text (rand, pieces, G_N_ELEMENTS (pieces), 12);
      g_autofree char *needle = random_text (rand, pieces, G_N_ELEMENTS (pieces), 3);
      gssize first = tm_text_find_word (haystack, needle);
      gsize length = strlen (haystack);
      gssize first_at = -1;
      for (gsize offset = 0; offset <= length && first_at < 0; offset++)
        if (tm_text_word_at (haystack, offset, needle))
          first_at = (gssize) offset;
      if (first != first_at)
        g_error ("needle \"%s\" in \"%s\": find_word says %" G_GSSIZE_FORMAT
                 ", word_at says %" G_GSSIZE_FORMAT, needle, haystack, first, first_at);
      found += first >= 0;
    }
  /* Both outcomes were exercised. */
  g_assert_cmpuint (found, >, 500);
  g_assert_cmpuint (found, <, 19500);
}

static void
test_unichar_is_word_is_letter_mark_or_digit (void)
{
  for (gunichar c = 0; c < 0x3000; c++)
    g_assert_cmpint (tm_unichar_is_word (c), ==,
                     g_unichar_isalpha (c) || g_unichar_ismark (c) || g_unichar_isdigit (c));
  g_assert_true (tm_unichar_is_word (0x0628));   /* ب */
  g_assert_true (tm_unichar_is_word (0x064E));   /* fatha */
  g_assert_false (tm_unichar_is_word (0x060C));  /* Arabic comma */
}

/* Every code point but the surrogates, in strings of a few hundred. */
static GPtrArray *
all_code_points (void)
{
  GPtrArray *chunks = g_ptr_array_new_with_free_func (g_free);
  GString *chunk = g_string_new (NULL);
  for (gunichar c = 1; c <= 0x10FFFF; c++)
    {
      if (c >= 0xD800 && c <= 0xDFFF)
        continue;
      g_string_append_unichar (chunk, c);
      if (c % 512 == 0)
        {
          g_ptr_array_add (chunks, g_strdup (chunk->str));
          g_string_truncate (chunk, 0);
        }
    }
  g_ptr_array_add (chunks, g_string_free (chunk, FALSE));
  return chunks;
}

static void
test_fold_case_is_glib_casefold (void)
{
  g_autoptr (GPtrArray) chunks = all_code_points ();
  for (guint i = 0; i < chunks->len; i++)
    {
      const char *chunk = g_ptr_array_index (chunks, i);
      g_autofree char *ours = tm_text_fold_case (chunk);
      g_autofree char *glib = g_utf8_casefold (chunk, -1);
      g_assert_cmpstr (ours, ==, glib);
    }
  g_autofree char *mixed = tm_text_fold_case ("REFUND فاتورة Straße ΣΑΣ");
  g_assert_cmpstr (mixed, ==, "refund فاتورة strasse σασ");
}

/* tm_text_normalize folds the Arabic spellings before the case, and
 * tm_text_fold_case turns the KEEP_CASE form into the default one; both
 * give the text that case folding first used to give only when the two
 * foldings commute. Checked for every code point below U+20000 that NFKC
 * leaves alone with its case folding: fold (casefold (c)) == casefold
 * (fold (c)). */
static void
test_arabic_folding_commutes_with_case_folding (void)
{
  guint checked = 0;
  /* Every cased letter and every character either folding touches is
   * below U+20000 (Adlam, the last script with case, ends at U+1E95F). */
  for (gunichar c = 1; c < 0x20000; c++)
    {
      if (c >= 0xD800 && c <= 0xDFFF)
        continue;
      char text[8] = { 0 };
      g_unichar_to_utf8 (c, text);
      g_autofree char *case_folded = g_utf8_casefold (text, -1);
      g_autofree char *text_nfkc = g_utf8_normalize (text, -1, G_NORMALIZE_NFKC);
      g_autofree char *case_folded_nfkc = g_utf8_normalize (case_folded, -1, G_NORMALIZE_NFKC);
      if (strcmp (text_nfkc, text) != 0 || strcmp (case_folded_nfkc, case_folded) != 0)
        continue;
      g_autofree char *case_then_arabic = tm_text_normalize (case_folded, -1, TM_NORMALIZE_KEEP_CASE);
      g_autofree char *arabic = tm_text_normalize (text, -1, TM_NORMALIZE_KEEP_CASE);
      g_autofree char *arabic_then_case = tm_text_fold_case (arabic);
      g_autofree char *both = tm_text_normalize (text, -1, TM_NORMALIZE_DEFAULT);
      if (strcmp (case_then_arabic, arabic_then_case) != 0)
        g_error ("U+%04X: the foldings do not commute", c);
      g_assert_cmpstr (both, ==, case_then_arabic);
      checked++;
    }
  g_assert_cmpuint (checked, >, 50000);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/normalize/arabic/teh-marbuta-tatweel-harakat", test_arabic_teh_marbuta_tatweel_harakat);
  g_test_add_func ("/normalize/persian/kaf-matches-arabic-keyboard", test_persian_kaf_matches_arabic_keyboard);
  g_test_add_func ("/normalize/arabic/yeh-forms-equal", test_yeh_forms_equal);
  g_test_add_func ("/normalize/arabic/alef-forms-equal", test_alef_forms_equal);
  g_test_add_func ("/normalize/persian/heh-goal-and-ae", test_heh_goal_and_ae_become_heh);
  g_test_add_func ("/normalize/digits/arabic-indic-and-persian", test_digits_equal);
  g_test_add_func ("/normalize/persian/zwnj-and-direction-marks", test_zwnj_and_direction_marks_ignored);
  g_test_add_func ("/normalize/arabic/superscript-alef-quranic-marks", test_superscript_alef_and_quranic_marks_removed);
  g_test_add_func ("/normalize/arabic/presentation-forms", test_presentation_forms_become_letters);
  g_test_add_func ("/normalize/case/english", test_english_case_folded);
  g_test_add_func ("/normalize/case/german-sharp-s", test_german_sharp_s_casefolded);
  g_test_add_func ("/normalize/case/keep-case-flag", test_keep_case_flag);
  g_test_add_func ("/normalize/nfkc/fullwidth-and-nbsp", test_fullwidth_and_nbsp_become_ascii);
  g_test_add_func ("/normalize/nfkc/stable-table-premise", test_stable_table_premise);
  g_test_add_func ("/normalize/nfkc/piecewise-matches-whole", test_piecewise_nfkc_matches_whole);
  g_test_add_func ("/normalize/input/length-respected", test_length_argument_respected);
  g_test_add_func ("/normalize/input/invalid-utf8", test_invalid_utf8_does_not_crash);
  g_test_add_func ("/normalize/input/empty", test_empty_text);
  g_test_add_func ("/normalize/word/english-boundaries", test_word_boundaries_english);
  g_test_add_func ("/normalize/word/arabic-boundaries", test_word_boundaries_arabic);
  g_test_add_func ("/normalize/word/phrase-white-space", test_phrase_with_other_white_space);
  g_test_add_func ("/normalize/word/offset", test_find_word_returns_offset);
  g_test_add_func ("/normalize/word/word-at-agrees-with-find-word", test_word_at_agrees_with_find_word);
  g_test_add_func ("/normalize/word/word-characters", test_unichar_is_word_is_letter_mark_or_digit);
  g_test_add_func ("/normalize/case/fold-case-is-glib-casefold", test_fold_case_is_glib_casefold);
  g_test_add_func ("/normalize/case/arabic-folding-commutes", test_arabic_folding_commutes_with_case_folding);
  return g_test_run ();
}
