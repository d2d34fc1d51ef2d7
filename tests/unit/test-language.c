/* test-language.c - choosing the answer's language: script detection
 * (Persian, Arabic, neither), Content-Language parsing, and the order of the
 * choice; hostile input (invalid UTF-8, huge texts) stays bounded. */
#include "language.h"

#include <string.h>

static void
test_source_names (void)
{
  g_assert_cmpstr (tm_language_source_name (TM_LANGUAGE_FROM_RULE), ==, "rule");
  g_assert_cmpstr (tm_language_source_name (TM_LANGUAGE_FROM_CONTENT_LANGUAGE), ==, "content-language");
  g_assert_cmpstr (tm_language_source_name (TM_LANGUAGE_FROM_SCRIPT), ==, "script");
  g_assert_cmpstr (tm_language_source_name (TM_LANGUAGE_FROM_QUEUE_DEFAULT), ==, "queue-default");
}

static void
test_persian (void)
{
  const char *texts[] = {
    "سلام، پرداخت من انجام نشد",          /* pe */
    "چرا فاکتور نرسید",                   /* tcheh */
    "مژده",                               /* jeh */
    "لطفا رمز عبور را بگویید",             /* gaf */
    "سلامی",                              /* Farsi yeh */
    "کتاب",                               /* keheh */
    "\xef\xad\x98\xd8\xb3\xd8\xb1",       /* U+FB58 pe (initial form), then seen, reh */
  };
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    if (g_strcmp0 (tm_language_from_script (texts[i], -1), "fa") != 0)
      g_error ("\"%s\": want fa, got %s", texts[i],
               tm_language_from_script (texts[i], -1) ?: "NULL");
}

static void
test_arabic (void)
{
  const char *texts[] = {
    "مرحبا، لم تصلني الفاتورة حتى الآن",
    "شكرًا جزيلًا",                         /* tanwin marks are not letters */
    "كتاب",                               /* Arabic kaf, not keheh */
    "على",                                /* alef maksura, not Farsi yeh */
    "\xef\xbb\xa3\xef\xba\xae\xef\xba\x8d", /* presentation forms of meem, reh, alef */
    "Re: فاتورة",                          /* 2 Latin letters, 6 Arabic */
  };
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    if (g_strcmp0 (tm_language_from_script (texts[i], -1), "ar") != 0)
      g_error ("\"%s\": want ar, got %s", texts[i],
               tm_language_from_script (texts[i], -1) ?: "NULL");
}

/* The rule the issue gives, kept on purpose (see language.c): any letter
 * only Persian uses makes the text Persian, however long the Arabic around
 * it. */
static void
test_one_persian_letter_in_long_arabic (void)
{
  g_autoptr (GString) text = g_string_new (NULL);
  for (int i = 0; i < 200; i++)
    g_string_append (text, "مرحبا، لم تصلني الفاتورة حتى الآن. ");
  g_assert_cmpstr (tm_language_from_script (text->str, -1), ==, "ar");
  g_string_append (text, "گ");
  g_assert_cmpstr (tm_language_from_script (text->str, -1), ==, "fa");
}

static void
test_mostly_other_scripts (void)
{
  /* One Arabic name in an English mail does not decide. */
  g_assert_null (tm_language_from_script ("Hello, my colleague محمد said the invoice is late", -1));
  /* The quarter boundary: 1 Arabic letter of 4 is enough, of 5 not. */
  g_assert_cmpstr (tm_language_from_script ("abc ب", -1), ==, "ar");
  g_assert_null (tm_language_from_script ("abcd ب", -1));
  /* Digits, punctuation and Arabic-Indic digits are no letters. */
  g_assert_cmpstr (tm_language_from_script ("12345 !!! ٣٤٥ ب", -1), ==, "ar");
  g_assert_null (tm_language_from_script ("12345 !!! ٣٤٥", -1));
  g_assert_null (tm_language_from_script ("", -1));
  g_assert_null (tm_language_from_script (NULL, 0));
  g_assert_null (tm_language_from_script ("Привет, счёт не пришёл", -1));
  g_assert_null (tm_language_from_script ("שלום", -1));
  /* LENGTH is honoured: the Arabic after it is not seen. */
  g_assert_null (tm_language_from_script ("hello مرحبا", 5));
  g_assert_cmpstr (tm_language_from_script ("hello مرحبا", -1), ==, "ar");
  /* An embedded NUL ends nothing when LENGTH is given. */
  const char with_nul[] = "ab\0مرحبا";
  g_assert_cmpstr (tm_language_from_script (with_nul, sizeof with_nul - 1), ==, "ar");
  g_assert_null (tm_language_from_script (with_nul, -1));
}

static void
test_invalid_utf8 (void)
{
  const char *texts[] = {
    "\xd9",                        /* lead byte alone */
    "\xd9\xd9\xd9\xd9",
    "\xc0\xaf\xe0\x80\xaf",        /* overlong */
    "\xed\xa0\x80",                /* surrogate */
    "\xf4\x90\x80\x80",            /* beyond U+10FFFF */
    "\xff\xfe\xfd",
    "\x80\x81\x82 \xd9\x85",       /* continuation bytes, then meem */
  };
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      const char *got = tm_language_from_script (texts[i], -1);
      g_assert_true (got == NULL || strcmp (got, "ar") == 0);
    }
  /* Valid letters around junk are still counted. */
  g_assert_cmpstr (tm_language_from_script ("\xff\xd9\x85\xd8\xb1\xfe\xd8\xad\xd8\xa8\xd8", -1), ==, "ar");
  g_assert_cmpstr (tm_language_from_script ("\x80\xda\xaf\xff", -1), ==, "fa");

  /* Random bytes, including cut sequences at the very end of the buffer. */
  for (int round = 0; round < 2000; round++)
    {
      gsize length = g_test_rand_int_range (0, 64);
      guchar *bytes = g_malloc (length + 1);
      for (gsize i = 0; i < length; i++)
        bytes[i] = (guchar) g_test_rand_int_range (0x80, 0x100);
      bytes[length] = '\0';
      const char *got = tm_language_from_script ((const char *) bytes, (gssize) length);
      g_assert_true (got == NULL || strcmp (got, "ar") == 0 || strcmp (got, "fa") == 0);
      g_free (bytes);
    }
}

static void
test_bounded_to_64_kib (void)
{
  const gsize megabyte = 1024 * 1024;
  /* 64 KiB of English, then a megabyte of Arabic: the Arabic is never seen. */
  g_autoptr (GString) text = g_string_sized_new (megabyte + 65536 + 1);
  while (text->len < 65536)
    g_string_append_c (text, 'x');
  while (text->len < megabyte + 65536)
    g_string_append (text, "مرحبا ");
  g_assert_null (tm_language_from_script (text->str, -1));
  g_assert_null (tm_language_from_script (text->str, (gssize) text->len));

  /* A megabyte of Arabic alone is Arabic. */
  g_assert_cmpstr (tm_language_from_script (text->str + 65536, -1), ==, "ar");

  /* A buffer of exactly 64 KiB without a NUL: nothing past it is read
   * (AddressSanitizer would report it). One Arabic letter cut in half by the
   * limit is skipped, not misread. */
  char *exact = g_malloc (65536);
  memset (exact, 'a', 65536);
  exact[65535] = '\xd9';
  g_assert_null (tm_language_from_script (exact, -1));
  memset (exact, ' ', 65534);
  exact[65534] = '\xd9';
  exact[65535] = '\x85';
  g_assert_cmpstr (tm_language_from_script (exact, -1), ==, "ar");
  g_free (exact);

  /* The choice reads subject and body each within the bound. */
  const char *const available[] = { "ar", "en", NULL };
  TmLanguageSource source;
  g_autofree char *language = tm_language_choose (NULL, NULL, "hi", text->str, available, "en",
                                                  &source);
  g_assert_cmpstr (language, ==, "en");
  g_assert_cmpint (source, ==, TM_LANGUAGE_FROM_QUEUE_DEFAULT);
}

static void
assert_tags (const char *header, const char *const *want)
{
  g_auto (GStrv) got = tm_language_tags_from_header (header);
  g_assert_nonnull (got);
  if (!g_strv_equal ((const char *const *) got, want))
    {
      g_autofree char *joined = g_strjoinv ("|", got);
      g_error ("Content-Language \"%s\": got \"%s\"", header ?: "(null)", joined);
    }
}

static void
test_content_language_tags (void)
{
  const char *const none[] = { NULL };
  const char *const ar_en[] = { "ar", "en", NULL };
  const char *const ar[] = { "ar", NULL };
  const char *const fa_en[] = { "fa", "en", NULL };
  const char *const en_fr[] = { "en", "fr", NULL };
  assert_tags (NULL, none);
  assert_tags ("", none);
  assert_tags ("ar-SA, en", ar_en);
  assert_tags ("ar-SA,en-GB", ar_en);
  assert_tags ("AR-sa, ar-EG, ar", ar);
  assert_tags (" fa-IR ,\r\n\ten-US ", fa_en);
  assert_tags ("(Persian) fa, en (English)", fa_en);
  assert_tags ("ar;q=0.9, en;q=0.1", ar_en);
  assert_tags ("ar_SA", ar);
  assert_tags ("en, fr", en_fr);
  assert_tags ("ara", (const char *const[]) { "ara", NULL });
  /* Junk entries are skipped; good ones around them still count. */
  assert_tags ("*", none);
  assert_tags (",,, ,", none);
  assert_tags ("i-klingon, x-private, 12, a, e1, toolongtag-x, ar SA", none);
  assert_tags ("\xff\xfe, <script>, ar\xd9\x85, \"ar\"", none);
  assert_tags ("junk!, ar-SA, ;q=1, en", ar_en);
  assert_tags ("(unclosed ar, en", (const char *const[]) { "en", NULL });

  /* A huge header is read up to 32 distinct tags, and fast. */
  g_autoptr (GString) many = g_string_new (NULL);
  for (int i = 0; i < 40; i++)
    g_string_append_printf (many, "%c%c, ", 'a' + i / 26, 'a' + i % 26);
  g_auto (GStrv) capped = tm_language_tags_from_header (many->str);
  g_assert_cmpuint (g_strv_length (capped), ==, 32);
  g_assert_cmpstr (capped[0], ==, "aa");
  g_assert_cmpstr (capped[31], ==, "bf");
  g_autoptr (GString) repeated = g_string_new (NULL);
  for (int i = 0; i < 100000; i++)
    g_string_append (repeated, "ar-SA,");
  assert_tags (repeated->str, ar);
}

typedef struct {
  const char *rule, *content_language, *subject, *body;
  const char *const *available;
  const char *queue_default;
  const char *want;
  TmLanguageSource want_source;
} ChooseCase;

static void
test_choose (void)
{
  const char *const ar_en_fa[] = { "ar", "en", "fa", NULL };
  const char *const en_only[] = { "en", NULL };
  const char *const ar_only[] = { "ar", NULL };
  const char *const fr_de[] = { "fr", "de", NULL };
  const char *const upper[] = { "AR", "En", NULL };
  const char *const nothing[] = { NULL };
  const char *persian = "سلام، پرداخت من انجام نشد";
  const char *arabic = "مرحبا، لم تصلني الفاتورة";
  const char *english = "Hello, the invoice did not arrive";
  const ChooseCase cases[] = {
    /* 1. a rule's choice, when it has templates */
    { "fa", "ar-SA, en", arabic, NULL, ar_en_fa, "en", "fa", TM_LANGUAGE_FROM_RULE },
    { "FA", NULL, english, NULL, ar_en_fa, "en", "fa", TM_LANGUAGE_FROM_RULE },
    { "de", "ar-SA, en", english, NULL, ar_en_fa, "en", "ar", TM_LANGUAGE_FROM_CONTENT_LANGUAGE },
    { "", NULL, english, NULL, ar_en_fa, "en", "en", TM_LANGUAGE_FROM_QUEUE_DEFAULT },
    /* 2. Content-Language "ar-SA, en", with and without Arabic templates */
    { NULL, "ar-SA, en", english, english, ar_en_fa, "fa", "ar", TM_LANGUAGE_FROM_CONTENT_LANGUAGE },
    { NULL, "ar-SA, en", arabic, arabic, en_only, "en", "en", TM_LANGUAGE_FROM_CONTENT_LANGUAGE },
    { NULL, "ar-SA, en", persian, NULL, fr_de, "fr", "fr", TM_LANGUAGE_FROM_QUEUE_DEFAULT },
    { NULL, "ar-SA, en", persian, NULL, nothing, "en", "en", TM_LANGUAGE_FROM_QUEUE_DEFAULT },
    { NULL, "ar-SA, en", english, NULL, upper, "en", "AR", TM_LANGUAGE_FROM_CONTENT_LANGUAGE },
    { NULL, "fr-FR", persian, NULL, ar_en_fa, "en", "fa", TM_LANGUAGE_FROM_SCRIPT },
    /* junk Content-Language falls through to the script, then the default */
    { NULL, "*, 12, x-foo, \xff", arabic, NULL, ar_en_fa, "en", "ar", TM_LANGUAGE_FROM_SCRIPT },
    { NULL, ";;;", english, NULL, ar_en_fa, "en", "en", TM_LANGUAGE_FROM_QUEUE_DEFAULT },
    { NULL, "", persian, NULL, ar_en_fa, "en", "fa", TM_LANGUAGE_FROM_SCRIPT },
    /* 3. script of subject and body together */
    { NULL, NULL, "Re: invoice", persian, ar_en_fa, "en", "fa", TM_LANGUAGE_FROM_SCRIPT },
    { NULL, NULL, arabic, NULL, ar_en_fa, "en", "ar", TM_LANGUAGE_FROM_SCRIPT },
    { NULL, NULL, "فاتورة", english, ar_en_fa, "en", "en", TM_LANGUAGE_FROM_QUEUE_DEFAULT },
    { NULL, NULL, persian, NULL, ar_only, "ar", "ar", TM_LANGUAGE_FROM_QUEUE_DEFAULT },
    { NULL, NULL, persian, NULL, en_only, "en", "en", TM_LANGUAGE_FROM_QUEUE_DEFAULT },
    { NULL, NULL, "", "\xd9\xd9\xff", ar_en_fa, "en", "en", TM_LANGUAGE_FROM_QUEUE_DEFAULT },
    /* English with one Arabic word: the default */
    { NULL, NULL, "Invoice", "Dear team, my name is محمد and I paid twice.", ar_en_fa, "en", "en",
      TM_LANGUAGE_FROM_QUEUE_DEFAULT },
    /* 4. the queue default is returned even without templates */
    { NULL, NULL, english, NULL, ar_en_fa, "de", "de", TM_LANGUAGE_FROM_QUEUE_DEFAULT },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const ChooseCase *c = &cases[i];
      TmLanguageSource source = -1;
      g_autofree char *got = tm_language_choose (c->rule, c->content_language, c->subject, c->body,
                                                 c->available, c->queue_default, &source);
      if (g_strcmp0 (got, c->want) != 0 || source != c->want_source)
        g_error ("case %" G_GSIZE_FORMAT ": got %s from %s, want %s from %s", i, got,
                 tm_language_source_name (source), c->want,
                 tm_language_source_name (c->want_source));
    }
  /* SOURCE may be NULL. */
  g_autofree char *language = tm_language_choose (NULL, NULL, arabic, NULL, ar_en_fa, "en", NULL);
  g_assert_cmpstr (language, ==, "ar");
}

/* The script count's shortcut for the Arabic block must say what GLib says:
 * random text from that block, Persian letters, presentation forms, Latin,
 * digits and broken bytes, judged by a plain GLib loop as reference. */
static const char *
reference_language (const char *text, gsize length)
{
  gsize letters = 0, arabic = 0, persian = 0;
  const char *at = text, *end = text + length;
  while (at < end)
    {
      gunichar c = g_utf8_get_char_validated (at, end - at);
      if (c == (gunichar) -1 || c == (gunichar) -2)
        {
          at++;
          continue;
        }
      at = g_utf8_next_char (at);
      if (!g_unichar_isalpha (c))
        continue;
      letters++;
      if (g_unichar_get_script (c) != G_UNICODE_SCRIPT_ARABIC)
        continue;
      arabic++;
      gunichar base[G_UNICHAR_MAX_DECOMPOSITION_LENGTH] = { c };
      gsize n = ((c >= 0xFB50 && c <= 0xFDFF) || (c >= 0xFE70 && c <= 0xFEFF))
                ? g_unichar_fully_decompose (c, TRUE, base, G_N_ELEMENTS (base)) : 1;
      if (n == 1 && (base[0] == 0x067E || base[0] == 0x0686 || base[0] == 0x0698
                     || base[0] == 0x06AF || base[0] == 0x06CC || base[0] == 0x06A9))
        persian++;
    }
  if (arabic == 0 || arabic * 4 < letters)
    return NULL;
  return persian > 0 ? "fa" : "ar";
}

static void
test_script_shortcut_agrees_with_glib (void)
{
  GRand *rand = g_rand_new_with_seed (20261123);
  static const gunichar others[] = { 'a', 'Z', ' ', '7', 0x0660, 0x06F1, 0xFB56, 0xFEF5,
                                     0x0750, 0x08A0, 0x00E9, 0x05D0, 0x200C };
  for (int round = 0; round < 2000; round++)
    {
      GString *text = g_string_new (NULL);
      int chars = g_rand_int_range (rand, 0, 40);
      for (int i = 0; i < chars; i++)
        {
          int pick = g_rand_int_range (rand, 0, 10);
          if (pick < 5)
            g_string_append_unichar (text, 0x0600 + (gunichar) g_rand_int_range (rand, 0, 256));
          else if (pick < 9)
            g_string_append_unichar (text, others[g_rand_int_range (rand, 0, G_N_ELEMENTS (others))]);
          else
            g_string_append_c (text, (char) g_rand_int_range (rand, 0xD8, 0xDC)); /* a cut lead */
        }
      const char *expected = reference_language (text->str, text->len);
      const char *got = tm_language_from_script (text->str, (gssize) text->len);
      if (g_strcmp0 (expected, got) != 0)
        g_error ("round %d: %s against GLib's %s for \"%s\"", round, got, expected, text->str);
      g_string_free (text, TRUE);
    }
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/language/source-names", test_source_names);
  g_test_add_func ("/language/script/persian-letters-give-fa", test_persian);
  g_test_add_func ("/language/script/arabic-gives-ar", test_arabic);
  g_test_add_func ("/language/script/shortcut-agrees-with-glib", test_script_shortcut_agrees_with_glib);
  g_test_add_func ("/language/script/one-persian-letter-in-long-arabic-gives-fa",
                   test_one_persian_letter_in_long_arabic);
  g_test_add_func ("/language/script/mostly-other-scripts-give-null", test_mostly_other_scripts);
  g_test_add_func ("/language/script/invalid-utf8-is-skipped", test_invalid_utf8);
  g_test_add_func ("/language/script/bounded-to-64-kib", test_bounded_to_64_kib);
  g_test_add_func ("/language/content-language/tags-and-junk", test_content_language_tags);
  g_test_add_func ("/language/choose/order-and-availability", test_choose);
  return g_test_run ();
}
