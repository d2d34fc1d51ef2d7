/* test-message.c - unit tests for charset.c, html_text.c and message.c.
 *
 * Fixtures live in tests/messages (see its README); TM_TEST_DATA points
 * there under `make check`, otherwise the directory is found relative to
 * this source file. Expected Arabic and Persian text is written here as
 * UTF-8 literals, independent of the bytes (windows-1256, ISO-8859-6,
 * base64, quoted-printable) in the fixtures.
 *
 * HTML and charset inputs are copied into buffers of exactly their length
 * (no terminating NUL) so that AddressSanitizer catches any read past the
 * end.
 */
#include "charset.h"
#include "html_text.h"
#include "message.h"

#include <stdio.h>
#include <string.h>

/* --- helpers ----------------------------------------------------------------- */

static char *
fixture_path (const char *name)
{
  const char *dir = g_getenv ("TM_TEST_DATA");
  if (dir != NULL && *dir != '\0')
    return g_build_filename (dir, name, NULL);
  g_autofree char *here = g_path_get_dirname (__FILE__);
  return g_build_filename (here, "..", "messages", name, NULL);
}

static char *
read_fixture (const char *name, gsize *length)
{
  g_autofree char *path = fixture_path (name);
  g_autoptr (GError) error = NULL;
  char *contents = NULL;
  if (!g_file_get_contents (path, &contents, length, &error))
    g_error ("cannot read fixture %s: %s", path, error->message);
  return contents;
}

static gboolean
is_clean_utf8 (const char *text)
{
  return text == NULL || g_utf8_validate (text, -1, NULL);
}

/* Every string of a TmMessage is valid UTF-8 and the containers exist. */
static void
assert_message_well_formed (const TmMessage *msg)
{
  g_assert_nonnull (msg);
  g_assert_nonnull (msg->subject);
  g_assert_nonnull (msg->body_text);
  g_assert_nonnull (msg->to);
  g_assert_nonnull (msg->cc);
  g_assert_nonnull (msg->references);
  g_assert_nonnull (msg->attachments);
  g_assert_nonnull (msg->headers);
  g_assert_nonnull (msg->warnings);
  g_assert_nonnull (msg->content_hash);
  g_assert_cmpuint (strlen (msg->content_hash), ==, 64);

  g_assert_true (is_clean_utf8 (msg->subject));
  g_assert_true (is_clean_utf8 (msg->from_address));
  g_assert_true (is_clean_utf8 (msg->from_name));
  g_assert_true (is_clean_utf8 (msg->reply_to_address));
  g_assert_true (is_clean_utf8 (msg->message_id));
  g_assert_true (is_clean_utf8 (msg->in_reply_to));
  g_assert_true (is_clean_utf8 (msg->date));
  g_assert_true (is_clean_utf8 (msg->content_language));
  g_assert_true (is_clean_utf8 (msg->body_text));
  for (char **p = msg->to; *p != NULL; p++)
    g_assert_true (is_clean_utf8 (*p));
  for (char **p = msg->cc; *p != NULL; p++)
    g_assert_true (is_clean_utf8 (*p));
  for (char **p = msg->references; *p != NULL; p++)
    g_assert_true (is_clean_utf8 (*p));
  for (guint i = 0; i < msg->attachments->len; i++)
    {
      const TmAttachment *a = g_ptr_array_index (msg->attachments, i);
      g_assert_true (is_clean_utf8 (a->filename));
      g_assert_true (is_clean_utf8 (a->content_type));
    }
  for (guint i = 0; i < msg->headers->len; i++)
    {
      const TmHeader *h = g_ptr_array_index (msg->headers, i);
      g_assert_true (is_clean_utf8 (h->name));
      g_assert_true (is_clean_utf8 (h->value));
    }
  for (guint i = 0; i < msg->warnings->len; i++)
    g_assert_true (is_clean_utf8 (g_ptr_array_index (msg->warnings, i)));
}

static TmMessage *
parse_bytes (const char *raw, gsize length)
{
  /* An exact-length copy, so ASan sees overreads. */
  char *copy = g_malloc (length > 0 ? length : 1);
  memcpy (copy, raw, length);
  TmMessage *msg = tm_message_parse (copy, length, NULL);
  g_free (copy);
  assert_message_well_formed (msg);
  return msg;
}

static TmMessage *
parse_fixture (const char *name)
{
  gsize length;
  g_autofree char *raw = read_fixture (name, &length);
  TmMessage *msg = parse_bytes (raw, length);
  g_assert_cmpuint (msg->size, ==, length);
  return msg;
}

static gboolean
has_warning_containing (const TmMessage *msg, const char *fragment)
{
  for (guint i = 0; i < msg->warnings->len; i++)
    if (strstr (g_ptr_array_index (msg->warnings, i), fragment) != NULL)
      return TRUE;
  return FALSE;
}

static gboolean
array_has_warning (GPtrArray *warnings, const char *exact)
{
  for (guint i = 0; i < warnings->len; i++)
    if (strcmp (g_ptr_array_index (warnings, i), exact) == 0)
      return TRUE;
  return FALSE;
}

static const TmAttachment *
attachment_at (const TmMessage *msg, guint index)
{
  g_assert_cmpuint (index, <, msg->attachments->len);
  return g_ptr_array_index (msg->attachments, index);
}

static char *
charset (const char *bytes, gsize length, const char *declared, GPtrArray *warnings)
{
  static const char *const fallbacks[] = { "UTF-8", "windows-1256", NULL };
  char *copy = g_memdup2 (bytes, length > 0 ? length : 1);
  char *out = tm_charset_to_utf8 (copy, length, declared, fallbacks, warnings);
  g_free (copy);
  g_assert_nonnull (out);
  g_assert_true (g_utf8_validate (out, -1, NULL));
  return out;
}

static char *
html (const char *markup)
{
  gsize length = strlen (markup);
  char *copy = g_memdup2 (markup, length > 0 ? length : 1);
  char *out = tm_html_to_text (copy, length);
  g_free (copy);
  g_assert_nonnull (out);
  g_assert_true (g_utf8_validate (out, -1, NULL));
  return out;
}

/* "مرحبا، لم تصل فاتورتي" in windows-1256. */
static const char cp1256_greeting[] =
  "\xe3\xd1\xcd\xc8\xc7\xa1 \xe1\xe3 \xca\xd5\xe1 \xdd\xc7\xca\xe6\xd1\xca\xed";
static const char utf8_greeting[] = "مرحبا، لم تصل فاتورتي";

/* --- charset ------------------------------------------------------------------ */

static void
test_charset_windows_1256_and_aliases (void)
{
  static const char *const names[] = { "windows-1256", "cp1256", "Windows-1256", " \"CP1256\" ", NULL };
  for (guint i = 0; names[i] != NULL; i++)
    {
      g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *out = charset (cp1256_greeting, strlen (cp1256_greeting), names[i], warnings);
      g_assert_cmpstr (out, ==, utf8_greeting);
      g_assert_cmpuint (warnings->len, ==, 0);
    }
}

static void
test_charset_iso_8859_6_aliases (void)
{
  /* "مرحبا" in ISO-8859-6. */
  static const char bytes[] = "\xe5\xd1\xcd\xc8\xc7";
  static const char *const names[] = { "iso-8859-6", "ISO_8859-6", "ISO-8859-6", NULL };
  for (guint i = 0; names[i] != NULL; i++)
    {
      g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *out = charset (bytes, strlen (bytes), names[i], warnings);
      g_assert_cmpstr (out, ==, "مرحبا");
      g_assert_cmpuint (warnings->len, ==, 0);
    }
}

static void
test_charset_utf8_aliases (void)
{
  static const char *const names[] = { "utf-8", "UTF8", "utf8", NULL, "", NULL };
  for (guint i = 0; i < 5; i++)
    {
      g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *out = charset (utf8_greeting, strlen (utf8_greeting), names[i], warnings);
      g_assert_cmpstr (out, ==, utf8_greeting);
      g_assert_cmpuint (warnings->len, ==, 0);
    }
}

static void
test_charset_unknown_declared (void)
{
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *out = charset (cp1256_greeting, strlen (cp1256_greeting), "x-klingon", warnings);
  g_assert_cmpstr (out, ==, utf8_greeting);
  g_assert_true (array_has_warning (warnings, "unknown charset \"x-klingon\""));

  /* Unknown, but the bytes are UTF-8: UTF-8 comes before the fallbacks. */
  g_autoptr (GPtrArray) warnings2 = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *out2 = charset (utf8_greeting, strlen (utf8_greeting), "x-klingon", warnings2);
  g_assert_cmpstr (out2, ==, utf8_greeting);
  g_assert_true (array_has_warning (warnings2, "unknown charset \"x-klingon\""));
}

static void
test_charset_undeclared_labels (void)
{
  static const char *const names[] = { "unknown-8bit", "x-user-defined", "X-UNKNOWN", NULL };
  for (guint i = 0; names[i] != NULL; i++)
    {
      g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *out = charset (cp1256_greeting, strlen (cp1256_greeting), names[i], warnings);
      g_assert_cmpstr (out, ==, utf8_greeting);
      g_assert_cmpuint (warnings->len, ==, 0);
    }
}

static void
test_charset_hostile_names (void)
{
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  /* //IGNORE would make iconv drop bytes silently; it is refused. */
  g_autofree char *out = charset (cp1256_greeting, strlen (cp1256_greeting), "utf-8//IGNORE", warnings);
  g_assert_cmpstr (out, ==, utf8_greeting);
  g_assert_true (array_has_warning (warnings, "unknown charset \"utf-8//IGNORE\""));

  g_autoptr (GPtrArray) warnings2 = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *long_name = g_strnfill (300, 'x');
  g_autofree char *out2 = charset ("abc", 3, long_name, warnings2);
  g_assert_cmpstr (out2, ==, "abc");
  g_assert_cmpuint (warnings2->len, ==, 1);
  g_assert_cmpuint (strlen (g_ptr_array_index (warnings2, 0)), <, 80);

  g_autoptr (GPtrArray) warnings3 = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *out3 = charset ("abc", 3, "bad\nname\x01", warnings3);
  g_assert_cmpstr (out3, ==, "abc");
  g_assert_true (array_has_warning (warnings3, "unknown charset \"bad?name?\""));
}

static void
test_charset_partial_fit_is_not_accepted (void)
{
  /* ISO-8859-6 Arabic followed by 0xFF, which ISO-8859-6 does not define.
   * The whole text must come from windows-1256, not half from each. */
  static const char bytes[] = "\xe5\xd1\xcd\xc8\xc7 \xff";
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *out = charset (bytes, strlen (bytes), "iso-8859-6", warnings);
  g_autofree char *expected = g_convert (bytes, -1, "UTF-8", "CP1256", NULL, NULL, NULL);
  g_assert_cmpstr (out, ==, expected);
  g_assert_true (array_has_warning (warnings, "text does not fit charset \"iso-8859-6\"; "
                                              "decoded as \"windows-1256\""));
}

static void
test_charset_last_resort_replacement (void)
{
  static const char *const fallbacks[] = { "UTF-8", "ISO-8859-6", NULL };
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  char bytes[] = { 'a', (char) 0xff, ' ', 'b', (char) 0xfe };
  g_autofree char *out = tm_charset_to_utf8 (bytes, sizeof bytes, NULL, fallbacks, warnings);
  g_assert_cmpstr (out, ==, "a\xef\xbf\xbd b\xef\xbf\xbd");
  g_assert_true (array_has_warning (warnings, "undecodable bytes replaced with U+FFFD"));

  /* No fallbacks at all, and no warnings array. */
  g_autofree char *out2 = tm_charset_to_utf8 (bytes, sizeof bytes, "utf-8", NULL, NULL);
  g_assert_cmpstr (out2, ==, "a\xef\xbf\xbd b\xef\xbf\xbd");
}

static void
test_charset_nul_bytes (void)
{
  char bytes[] = { 'a', '\0', 'b' };
  g_autofree char *out = charset (bytes, sizeof bytes, NULL, NULL);
  g_assert_cmpstr (out, ==, "a\xef\xbf\xbd" "b");
  g_autofree char *out2 = charset (bytes, sizeof bytes, "windows-1256", NULL);
  g_assert_cmpstr (out2, ==, "a\xef\xbf\xbd" "b");
}

static void
test_charset_utf8_damage (void)
{
  /* Declared UTF-8, long Arabic text, one broken byte: keep the text. */
  g_autoptr (GString) text = g_string_new (NULL);
  for (int i = 0; i < 10; i++)
    g_string_append (text, utf8_greeting);
  g_string_append_c (text, (char) 0xff);
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *out = charset (text->str, text->len, "utf-8", warnings);
  g_assert_true (g_str_has_prefix (out, utf8_greeting));
  g_assert_true (g_str_has_suffix (out, "\xef\xbf\xbd"));
  g_assert_true (array_has_warning (warnings, "1 invalid UTF-8 bytes replaced with U+FFFD"));

  /* Declared UTF-8 but really windows-1256: the fallback wins. */
  g_autoptr (GPtrArray) warnings2 = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *out2 = charset (cp1256_greeting, strlen (cp1256_greeting), "utf-8", warnings2);
  g_assert_cmpstr (out2, ==, utf8_greeting);
  g_assert_true (array_has_warning (warnings2, "text does not fit charset \"utf-8\"; "
                                               "decoded as \"windows-1256\""));

  /* Undeclared UTF-8 cut in the middle of the last character (a truncated
   * mail): still UTF-8, not windows-1256 mojibake. */
  gsize cut = strlen (utf8_greeting) - 1;
  g_autoptr (GPtrArray) warnings3 = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *out3 = charset (utf8_greeting, cut, NULL, warnings3);
  g_autofree char *expected = g_strconcat ("مرحبا، لم تصل فاتورت", "\xef\xbf\xbd", NULL);
  g_assert_cmpstr (out3, ==, expected);
}

static void
test_charset_empty_and_ascii (void)
{
  g_autofree char *empty = charset ("", 0, "windows-1256", NULL);
  g_assert_cmpstr (empty, ==, "");
  g_autofree char *empty2 = tm_charset_to_utf8 (NULL, 0, NULL, NULL, NULL);
  g_assert_cmpstr (empty2, ==, "");

  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *ascii = charset ("caf\xe9", 4, "us-ascii", warnings);
  /* Not ASCII and not UTF-8; windows-1256 also has é at 0xE9. */
  g_assert_cmpstr (ascii, ==, "café");
  g_assert_true (array_has_warning (warnings, "text does not fit charset \"us-ascii\"; "
                                              "decoded as \"windows-1256\""));

  g_autofree char *latin1 = charset ("caf\xe9", 4, "latin1", NULL);
  g_assert_cmpstr (latin1, ==, "café");
}

/* --- html ----------------------------------------------------------------------- */

static void
test_html_entities (void)
{
  g_autofree char *out = html ("a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; f&nbsp;g "
                               "&#1605;&#x631;&#X62D; &eacute; &euro; &zwnj;");
  g_assert_cmpstr (out, ==, "a & b <c> \"d\" 'e' f g مرح é € \xe2\x80\x8c");

  g_autofree char *unknown = html ("&bogus; &amp &#; &#x; & alone &toolongentityname;");
  g_assert_cmpstr (unknown, ==, "&bogus; & &#; &#x; & alone &toolongentityname;");

  g_autofree char *huge = html ("x&#99999999999;y&#x110000;z&#0;w&#xD800;v");
  g_assert_cmpstr (huge, ==, "x\xef\xbf\xbdy\xef\xbf\xbdz\xef\xbf\xbdw\xef\xbf\xbdv");
}

static void
test_html_drops_script_style_head (void)
{
  g_autofree char *out = html ("<html><head><title>T</title><style>p{x:1}</style></head>"
                               "<body><script type=\"text/javascript\">alert('<p>hi</p>')</script>"
                               "Visible<SCRIPT>hidden</SCRIPT> text<style>also hidden</style></body></html>");
  g_assert_cmpstr (out, ==, "Visible text");

  /* A <head> that is never closed ends at <body>. */
  g_autofree char *open_head = html ("<head><title>x</title><body>Body text");
  g_assert_cmpstr (open_head, ==, "Body text");

  /* An unclosed <script> swallows the rest, and that is all. */
  g_autofree char *open_script = html ("before<script>if (a < b) {");
  g_assert_cmpstr (open_script, ==, "before");
}

static void
test_html_blocks_and_lists (void)
{
  g_autofree char *out = html ("<h1>Title</h1><p>One   two\n three</p><div>Line</div>x<br>y<br/>z"
                               "<ul><li>first</li><li>second</li></ul><table><tr><td>a</td><td>b</td></tr>"
                               "<tr><td>c</td></tr></table>end");
  g_assert_cmpstr (out, ==, "Title\n\nOne two three\n\nLine\nx\ny\nz\n\n- first\n- second\n\na b\nc\n\nend");

  g_autofree char *spaces = html ("   \n\t <p>  padded  </p>  \n ");
  g_assert_cmpstr (spaces, ==, "padded");
}

static void
test_html_links (void)
{
  g_autofree char *out = html ("<a href=\"https://example.com/a?x=1&amp;y=2\">the page</a>, "
                               "<a href='https://example.com/b'>https://example.com/b</a>, "
                               "<a href=mailto:help@example.com>help@example.com</a>, "
                               "<a href=\"#top\">top</a> <a href=\"javascript:void(0)\">js</a> "
                               "<a href=\"https://example.com/c\"></a>.");
  g_assert_cmpstr (out, ==, "the page <https://example.com/a?x=1&y=2>, https://example.com/b, "
                            "help@example.com, top js .");
}

static void
test_html_broken_markup (void)
{
  static const struct { const char *in; const char *out; } cases[] = {
    { "text <a href=", "text" },
    { "text <a href=\"never closed", "text" },
    { "text <!-- comment without end", "text" },
    { "a <!-- c --> b", "a b" },
    { "x <p", "x" },
    { "x <", "x <" },
    { "1 < 2 and 3 > 2", "1 < 2 and 3 > 2" },
    { "<", "<" },
    { "&", "&" },
    { "&#", "&#" },
    { "&#x", "&#x" },
    { "<!DOCTYPE html><?xml version=\"1.0\"?>ok", "ok" },
    { "<!DOCTYPE", "" },
    { "</", "" },
    { "<a title=it\"s href=https://e.x/>link</a>", "link <https://e.x/>" },
    { "", "" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *out = html (cases[i].in);
      g_assert_cmpstr (out, ==, cases[i].out);
    }
  /* Character references to white space collapse like white space. */
  g_autofree char *spaces = html ("a&#32;&#10;&#9;b&#13;");
  g_assert_cmpstr (spaces, ==, "a b");
}

static void
test_html_linear_on_hostile_input (void)
{
  /* Many unclosed tags, quotes and comments: must finish quickly. */
  g_autoptr (GString) s = g_string_new (NULL);
  for (int i = 0; i < 20000; i++)
    g_string_append (s, "<a href=\"x'<b <!-- &#x ");
  gint64 start = g_get_monotonic_time ();
  g_autofree char *out = tm_html_to_text (s->str, s->len);
  g_assert_nonnull (out);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);

  g_string_truncate (s, 0);
  for (int i = 0; i < 20000; i++)
    g_string_append (s, "<script>x<head>y<style>");
  g_autofree char *out2 = tm_html_to_text (s->str, s->len);
  g_assert_cmpstr (out2, ==, "");
}

/* --- fixtures ------------------------------------------------------------------ */

static void
test_message_arabic_windows_1256 (void)
{
  TmMessage *msg = parse_fixture ("arabic-windows-1256.eml");
  g_assert_cmpstr (msg->subject, ==, "لم تصل فاتورتي لشهر أكتوبر");
  g_assert_cmpstr (msg->from_address, ==, "ahmed.salem@example.sa");
  g_assert_cmpstr (msg->from_name, ==, "أحمد السالم");
  g_assert_cmpstr (msg->body_text, ==, "مرحبا، لم تصل فاتورتي لشهر أكتوبر.\n"
                                       "رقم الحساب 4471، وقد دفعت المبلغ في الموعد.\n"
                                       "شكرا لكم\n"
                                       "أحمد السالم\n");
  g_assert_cmpstr (msg->message_id, ==, "20241014093000.4471@mail.example.sa");
  g_assert_cmpstr (msg->content_language, ==, "ar");
  g_assert_cmpstr (msg->date, ==, "Mon, 14 Oct 2024 09:30:00 +0300");
  g_assert_cmpint (msg->date_unix, ==, 1728887400);
  g_assert_cmpuint (msg->attachments->len, ==, 0);
  g_assert_cmpuint (msg->warnings->len, ==, 0);
  /* Encoded words are kept as sent in headers. */
  g_assert_cmpstr (tm_message_header (msg, "subject"), ==,
                   "=?windows-1256?B?4eMgytXhIN3HyubRyu0g4dTl0SDD38rmyNE=?=");
  /* Folded Received: unfolded, CR and LF gone, the tab kept. */
  g_assert_cmpstr (tm_message_header (msg, "Received"), ==,
                   "from mail.example.sa (mail.example.sa [192.0.2.10])\tby mx.example.com "
                   "(Postfix) with ESMTPS id 4XYZ1\tfor <support@example.com>; "
                   "Mon, 14 Oct 2024 09:30:02 +0300 (+03)");
  tm_message_free (&msg);
  g_assert_null (msg);
}

static void
test_message_arabic_iso_8859_6 (void)
{
  TmMessage *msg = parse_fixture ("arabic-iso-8859-6.eml");
  g_assert_cmpstr (msg->subject, ==, "استفسار عن الطلب");
  g_assert_cmpstr (msg->body_text, ==, "السلام عليكم،\nأرجو إفادتي بموعد وصول الطلب رقم 5521.\nمع الشكر\n");
  g_assert_cmpstr (msg->from_address, ==, "layla@example.jo");
  g_assert_cmpstr (msg->from_name, ==, "Layla");
  g_assert_cmpuint (msg->warnings->len, ==, 0);
  tm_message_free (&msg);
}

static void
test_message_persian_utf8 (void)
{
  TmMessage *msg = parse_fixture ("persian-utf8.eml");
  g_assert_cmpstr (msg->subject, ==, "مشکل در پرداخت");
  g_assert_cmpstr (msg->from_address, ==, "maryam.ahmadi@example.ir");
  g_assert_cmpstr (msg->from_name, ==, "مریم احمدی");
  /* text/plain wins over the HTML alternative; the ZWNJ survives. */
  g_assert_cmpstr (msg->body_text, ==, "سلام، کارت بانکی من کار نمی‌کند و پرداخت انجام نشد.\n"
                                       "لطفا رسید پیوست را بررسی کنید.\n"
                                       "با تشکر، مریم احمدی\n");
  g_assert_cmpuint (msg->attachments->len, ==, 1);
  const TmAttachment *pdf = attachment_at (msg, 0);
  g_assert_cmpstr (pdf->filename, ==, "رسید-پرداخت.pdf");
  g_assert_cmpstr (pdf->content_type, ==, "application/pdf");
  g_assert_cmpuint (pdf->size, ==, 329);
  const char *const to[] = { "support@example.com", "billing@example.com", NULL };
  g_assert_cmpstrv (msg->to, to);
  /* The group "Finance:" is flattened into its members. */
  const char *const cc[] = { "ali@example.ir", "sara@example.ir", "omid@example.ir", NULL };
  g_assert_cmpstrv (msg->cc, cc);
  g_assert_cmpstr (msg->content_language, ==, "fa");
  g_assert_cmpint (msg->date_unix, ==, 1729075800);
  g_assert_cmpuint (msg->warnings->len, ==, 0);
  tm_message_free (&msg);
}

static void
test_message_persian_raw_8bit_header (void)
{
  TmMessage *msg = parse_fixture ("persian-raw-8bit-header.eml");
  g_assert_cmpstr (msg->subject, ==, "درخواست بازپرداخت سفارش ۱۲۳۴");
  g_assert_cmpstr (msg->from_name, ==, "رضا کریمی");
  g_assert_cmpstr (msg->from_address, ==, "reza.karimi@example.ir");
  g_assert_cmpstr (tm_message_header (msg, "Subject"), ==, "درخواست بازپرداخت سفارش ۱۲۳۴");
  g_assert_cmpstr (msg->body_text, ==, "سلام، لطفا مبلغ سفارش ۱۲۳۴ را بازپرداخت کنید.\n");
  tm_message_free (&msg);
}

static void
test_message_arabic_raw_cp1256_header (void)
{
  TmMessage *msg = parse_fixture ("arabic-raw-8bit-cp1256-header.eml");
  g_assert_cmpstr (msg->subject, ==, "طلب استرداد المبلغ");
  g_assert_cmpstr (tm_message_header (msg, "Subject"), ==, "طلب استرداد المبلغ");
  /* No charset parameter: the fallbacks decode the body too. */
  g_assert_cmpstr (msg->body_text, ==, "أرجو استرداد المبلغ المدفوع مرتين.\nمع التحية\n");
  g_assert_true (has_warning_containing (msg, "raw 8-bit"));
  tm_message_free (&msg);
}

static void
test_message_custom_fallbacks (void)
{
  /* A raw ISO-8859-6 subject decodes right only when the admin lists
   * ISO-8859-6 before windows-1256. */
  static const char raw[] = "From: a@example.com\nSubject: \xe5\xd1\xcd\xc8\xc7\n\nx\n";
  static const char *const iso_first[] = { "UTF-8", "ISO-8859-6", "windows-1256", NULL };
  TmParseOptions options = { .fallback_charsets = iso_first };
  TmMessage *msg = tm_message_parse (raw, strlen (raw), &options);
  assert_message_well_formed (msg);
  g_assert_cmpstr (msg->subject, ==, "مرحبا");
  tm_message_free (&msg);

  msg = tm_message_parse (raw, strlen (raw), NULL);
  assert_message_well_formed (msg);
  g_assert_cmpstr (msg->subject, !=, "مرحبا");
  tm_message_free (&msg);
}

static void
test_message_english_plain (void)
{
  TmMessage *msg = parse_fixture ("english-plain.eml");
  g_assert_cmpstr (msg->subject, ==, "Cannot log in to my account");
  g_assert_cmpstr (msg->from_address, ==, "john.smith@example.org");
  g_assert_cmpstr (msg->from_name, ==, "John Smith");
  g_assert_cmpstr (msg->reply_to_address, ==, "j.smith+tickets@example.org");
  const char *const to[] = { "support@example.com", "sales@example.com", NULL };
  g_assert_cmpstrv (msg->to, to);
  const char *const cc[] = { "manager@example.org", NULL };
  g_assert_cmpstrv (msg->cc, cc);
  g_assert_cmpstr (msg->message_id, ==, "CAF=english.plain.001@mail.example.org");
  g_assert_null (msg->in_reply_to);
  g_assert_cmpuint (g_strv_length (msg->references), ==, 0);
  g_assert_cmpint (msg->date_unix, ==, 1729339200);
  g_assert_cmpstr (msg->content_language, ==, "en-GB");
  g_assert_true (g_str_has_prefix (msg->body_text, "Hello,\n\nSince yesterday"));
  g_assert_true (g_str_has_suffix (msg->body_text, "Regards,\nJohn\n"));
  g_assert_cmpuint (msg->attachments->len, ==, 0);
  g_assert_cmpuint (msg->warnings->len, ==, 0);
  g_assert_false (msg->truncated);

  /* Headers in order, names as sent. */
  g_assert_cmpuint (msg->headers->len, ==, 12);
  const TmHeader *first = g_ptr_array_index (msg->headers, 0);
  const TmHeader *last = g_ptr_array_index (msg->headers, 11);
  g_assert_cmpstr (first->name, ==, "Received");
  g_assert_cmpstr (last->name, ==, "Content-Transfer-Encoding");
  g_assert_cmpstr (last->value, ==, "7bit");
  tm_message_free (&msg);
}

static void
test_message_html_only (void)
{
  TmMessage *msg = parse_fixture ("html-only.eml");
  g_assert_cmpstr (msg->body_text, ==,
                   "Order #7781 & delivery\n\n"
                   "The parcel was not delivered — tracking says \"lost\".\n\n"
                   "- Item: café beans\n- Price: €12 <incl. VAT>\n\n"
                   "See my order <https://shop.example.net/orders/7781> or https://shop.example.net/help.\n\n"
                   "Thanks – Emma ☺");
  g_assert_null (strstr (msg->body_text, "tracking ="));
  g_assert_null (strstr (msg->body_text, "font-family"));
  g_assert_null (strstr (msg->body_text, "comment"));
  g_assert_cmpuint (msg->attachments->len, ==, 0);
  tm_message_free (&msg);
}

static void
test_message_no_message_id (void)
{
  TmMessage *msg = parse_fixture ("no-message-id.eml");
  g_assert_null (msg->message_id);
  g_assert_true (has_warning_containing (msg, "no Message-ID header"));
  g_assert_cmpstr (msg->subject, ==, "Question without an id");
  g_assert_cmpint (msg->date_unix, ==, 1729512000);
  tm_message_free (&msg);
}

static void
test_message_unknown_charset (void)
{
  TmMessage *msg = parse_fixture ("unknown-charset.eml");
  g_assert_cmpstr (msg->body_text, ==, "The invoice is wrong: الفاتورة خاطئة\n");
  g_assert_true (has_warning_containing (msg, "unknown charset \"x-klingon\""));
  tm_message_free (&msg);
}

static void
test_message_truncated_multipart (void)
{
  TmMessage *msg = parse_fixture ("truncated-multipart.eml");
  g_assert_cmpstr (msg->subject, ==, "Logs attached");
  g_assert_cmpstr (msg->body_text, ==, "Please find the server logs attached.");
  g_assert_cmpuint (msg->attachments->len, ==, 1);
  const TmAttachment *zip = attachment_at (msg, 0);
  g_assert_cmpstr (zip->filename, ==, "logs.zip");
  g_assert_cmpstr (zip->content_type, ==, "application/zip");
  /* 20 base64 lines of 57 bytes and 40 characters (30 bytes) more. */
  g_assert_cmpuint (zip->size, ==, 20 * 57 + 30);
  g_assert_true (has_warning_containing (msg, "truncated"));
  tm_message_free (&msg);
}

static void
test_message_empty_body (void)
{
  TmMessage *msg = parse_fixture ("empty-body.eml");
  g_assert_cmpstr (msg->subject, ==, "Empty body");
  g_assert_cmpstr (msg->body_text, ==, "");
  g_assert_cmpuint (msg->attachments->len, ==, 0);
  g_assert_cmpuint (msg->warnings->len, ==, 0);
  tm_message_free (&msg);
}

static void
test_message_missing_headers (void)
{
  TmMessage *msg = parse_fixture ("missing-headers.eml");
  g_assert_cmpstr (msg->subject, ==, "");
  g_assert_null (msg->from_address);
  g_assert_null (msg->from_name);
  g_assert_null (msg->date);
  g_assert_cmpint (msg->date_unix, ==, 0);
  g_assert_cmpstr (msg->message_id, ==, "missing-headers@example.com");
  g_assert_cmpstr (msg->body_text, ==, "A mail without From, Subject or Date.\n");
  g_assert_true (has_warning_containing (msg, "no From header"));
  g_assert_true (has_warning_containing (msg, "no Date header"));
  tm_message_free (&msg);
}

static void
test_message_forged_ticket_header (void)
{
  TmMessage *msg = parse_fixture ("forged-ticket-header.eml");
  g_assert_cmpstr (tm_message_header (msg, "X-Ticket-ID"), ==, "999");
  g_assert_cmpstr (tm_message_header (msg, "x-ticket-queue"), ==, "support");

  /* The desk rewrites X-Ticket-*: they do not change the content hash. */
  gsize length;
  g_autofree char *raw = read_fixture ("forged-ticket-header.eml", &length);
  g_autofree char *stripped = g_strdup (raw);
  char *start = strstr (stripped, "X-Ticket-ID: 999\n");
  g_assert_nonnull (start);
  memmove (start, start + strlen ("X-Ticket-ID: 999\nX-Ticket-Queue: support\n"),
           strlen (start + strlen ("X-Ticket-ID: 999\nX-Ticket-Queue: support\n")) + 1);
  TmMessage *plain = parse_bytes (stripped, strlen (stripped));
  g_assert_cmpstr (plain->content_hash, ==, msg->content_hash);
  tm_message_free (&plain);
  tm_message_free (&msg);
}

static void
test_message_reply_with_tag (void)
{
  TmMessage *msg = parse_fixture ("reply-with-tag.eml");
  g_assert_cmpstr (msg->subject, ==, "Re: [Ticket#1] Cannot log in to my account");
  g_assert_cmpstr (msg->in_reply_to, ==, "ack-1@support.example.com");
  const char *const refs[] = { "CAF=english.plain.001@mail.example.org", "ack-1@support.example.com", NULL };
  g_assert_cmpstrv (msg->references, refs);
  g_assert_cmpstr (msg->message_id, ==, "reply-with-tag.002@mail.example.org");
  tm_message_free (&msg);
}

static void
test_message_reply_without_tag (void)
{
  TmMessage *msg = parse_fixture ("reply-without-tag.eml");
  g_assert_cmpstr (msg->subject, ==, "Re: Cannot log in to my account");
  g_assert_cmpstr (msg->in_reply_to, ==, "ack-1@support.example.com");
  g_assert_cmpuint (g_strv_length (msg->references), ==, 0);
  tm_message_free (&msg);
}

static void
test_message_other_system_tags (void)
{
  TmMessage *msg = parse_fixture ("other-system-tags.eml");
  g_assert_cmpstr (msg->subject, ==, "[#1042] [rt #5] hello");
  tm_message_free (&msg);
}

static void
test_message_nul_in_header (void)
{
  TmMessage *msg = parse_fixture ("nul-in-header.eml");
  g_assert_cmpstr (tm_message_header (msg, "Subject"), ==, "Order\xef\xbf\xbd status");
  g_assert_cmpstr (msg->subject, ==, "Order\xef\xbf\xbd status");
  const char *junk = tm_message_header (msg, "X-Junk");
  g_assert_nonnull (junk);
  g_assert_true (g_str_has_prefix (junk, "a\xef\xbf\xbd" "b"));
  g_assert_cmpstr (msg->message_id, ==, "nul-in-header@example.com");
  g_assert_cmpstr (msg->body_text, ==, "Header values with NUL bytes.\n");
  tm_message_free (&msg);
}

static void
test_message_encoded_word_malformed (void)
{
  TmMessage *msg = parse_fixture ("encoded-word-malformed.eml");
  /* Never fatal: whatever survives is valid text and ends in "tail". */
  g_assert_true (g_str_has_suffix (msg->subject, "tail"));
  g_assert_null (strstr (msg->subject, "?="));
  g_assert_cmpstr (msg->from_address, ==, "broken@example.com");
  g_assert_cmpstr (tm_message_header (msg, "Subject"), ==, "=?utf-8?B?@@@?= =?unknown?Q?x?= tail");
  tm_message_free (&msg);
}

static void
test_message_forwarded_rfc822 (void)
{
  TmMessage *msg = parse_fixture ("forwarded-rfc822.eml");
  /* The outer text is the body, never the forwarded mail's text. */
  g_assert_cmpstr (msg->body_text, ==, "See the forwarded invoice below.");
  g_assert_cmpuint (msg->attachments->len, ==, 2);
  const TmAttachment *inner = attachment_at (msg, 0);
  g_assert_cmpstr (inner->filename, ==, "Your invoice 2024-10");
  g_assert_cmpstr (inner->content_type, ==, "message/rfc822");
  g_assert_cmpuint (inner->size, >, 700);
  g_assert_cmpuint (inner->size, <, 1000);
  const TmAttachment *pdf = attachment_at (msg, 1);
  g_assert_cmpstr (pdf->filename, ==, "invoice-2024-10.pdf");
  g_assert_cmpuint (pdf->size, ==, 329);
  tm_message_free (&msg);
}

static const char *const all_fixtures[] = {
  "arabic-windows-1256.eml", "arabic-iso-8859-6.eml", "persian-utf8.eml",
  "persian-raw-8bit-header.eml", "arabic-raw-8bit-cp1256-header.eml", "english-plain.eml",
  "html-only.eml", "no-message-id.eml", "unknown-charset.eml", "truncated-multipart.eml",
  "empty-body.eml", "missing-headers.eml", "forged-ticket-header.eml", "reply-with-tag.eml",
  "reply-without-tag.eml", "other-system-tags.eml", "nul-in-header.eml",
  "encoded-word-malformed.eml", "forwarded-rfc822.eml", NULL
};

/* --- degenerate input ----------------------------------------------------------- */

static void
test_message_empty_input (void)
{
  TmMessage *msg = parse_bytes ("", 0);
  g_assert_cmpstr (msg->subject, ==, "");
  g_assert_cmpstr (msg->body_text, ==, "");
  g_assert_null (msg->from_address);
  g_assert_null (msg->message_id);
  g_assert_cmpuint (msg->headers->len, ==, 0);
  g_assert_cmpuint (msg->size, ==, 0);
  g_assert_true (has_warning_containing (msg, "empty"));
  tm_message_free (&msg);

  msg = tm_message_parse (NULL, 0, NULL);
  assert_message_well_formed (msg);
  tm_message_free (&msg);
  tm_message_free (&msg);     /* a cleared pointer is fine */
}

static void
test_message_headers_only (void)
{
  static const char with_blank[] = "From: a@example.com\r\nSubject: only headers\r\n\r\n";
  TmMessage *msg = parse_bytes (with_blank, strlen (with_blank));
  g_assert_cmpstr (msg->subject, ==, "only headers");
  g_assert_cmpstr (msg->from_address, ==, "a@example.com");
  g_assert_cmpstr (msg->body_text, ==, "");
  g_assert_false (has_warning_containing (msg, "no empty line"));
  tm_message_free (&msg);

  static const char without_blank[] = "From: a@example.com\nSubject: no blank line";
  msg = parse_bytes (without_blank, strlen (without_blank));
  g_assert_cmpstr (msg->subject, ==, "no blank line");
  g_assert_cmpstr (msg->body_text, ==, "");
  g_assert_true (has_warning_containing (msg, "no empty line after the headers"));
  tm_message_free (&msg);
}

static void
test_message_binary_junk (void)
{
  static const char junk[] = "\x01\x02\xff\xfe junk\n\x00\x00\x80\n\n\xc3\x28 body?";
  TmMessage *msg = parse_bytes (junk, sizeof junk - 1);
  g_assert_cmpstr (msg->subject, ==, "");
  g_assert_null (msg->from_address);
  g_assert_cmpuint (msg->headers->len, ==, 0);
  g_assert_true (has_warning_containing (msg, "no From header"));
  tm_message_free (&msg);
}

static void
test_message_invalid_date (void)
{
  static const char raw[] = "From: a@example.com\nDate: yesterday at noon\nMessage-ID: <>\n\nx\n";
  TmMessage *msg = parse_bytes (raw, strlen (raw));
  g_assert_cmpstr (msg->date, ==, "yesterday at noon");
  g_assert_cmpint (msg->date_unix, ==, 0);
  g_assert_true (has_warning_containing (msg, "Date header \"yesterday at noon\" is not a valid date"));
  g_assert_null (msg->message_id);
  g_assert_true (has_warning_containing (msg, "empty Message-ID header"));
  tm_message_free (&msg);
}

static void
test_message_body_choice (void)
{
  /* A text/plain attachment is not the body; the HTML part is. */
  static const char raw[] =
    "From: a@example.com\nContent-Type: multipart/mixed; boundary=B\n\n"
    "--B\nContent-Type: text/plain\nContent-Disposition: attachment; filename=notes.txt\n\nnot the body\n"
    "--B\nContent-Type: text/html; charset=windows-1256\n\n<p>\xe3\xd1\xcd\xc8\xc7</p>\n"
    "--B\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n"
    "--B--\n";
  TmMessage *msg = parse_bytes (raw, strlen (raw));
  g_assert_cmpstr (msg->body_text, ==, "مرحبا");
  g_assert_cmpuint (msg->attachments->len, ==, 2);
  g_assert_cmpstr (attachment_at (msg, 0)->filename, ==, "notes.txt");
  g_assert_cmpstr (attachment_at (msg, 0)->content_type, ==, "text/plain");
  g_assert_cmpuint (attachment_at (msg, 0)->size, ==, strlen ("not the body"));
  g_assert_cmpstr (attachment_at (msg, 1)->filename, ==, "");
  g_assert_cmpstr (attachment_at (msg, 1)->content_type, ==, "image/png");
  g_assert_cmpuint (attachment_at (msg, 1)->size, ==, 8);
  tm_message_free (&msg);
}

static void
test_message_deep_nesting (void)
{
  /* 1000 nested multiparts: bounded walk, one warning, no crash. */
  g_autoptr (GString) s = g_string_new ("From: deep@example.com\nSubject: deep\n");
  const int depth = 1000;
  for (int i = 0; i < depth; i++)
    g_string_append_printf (s, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
  g_string_append (s, "Content-Type: application/octet-stream\n\nleaf\n");
  for (int i = depth - 1; i >= 0; i--)
    g_string_append_printf (s, "--b%d--\n", i);
  TmMessage *msg = parse_bytes (s->str, s->len);
  g_assert_cmpstr (msg->subject, ==, "deep");
  g_assert_cmpuint (msg->attachments->len, ==, 0);
  g_assert_true (has_warning_containing (msg, "nested deeper than 64 levels"));
  tm_message_free (&msg);

  /* 40 levels are walked completely. */
  g_string_assign (s, "From: deep@example.com\nSubject: fine\n");
  for (int i = 0; i < 40; i++)
    g_string_append_printf (s, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
  g_string_append (s, "Content-Type: application/octet-stream\n\nleaf\n");
  for (int i = 39; i >= 0; i--)
    g_string_append_printf (s, "--b%d--\n", i);
  msg = parse_bytes (s->str, s->len);
  g_assert_cmpuint (msg->attachments->len, ==, 1);
  g_assert_false (has_warning_containing (msg, "nested deeper"));
  tm_message_free (&msg);

  /* Embedded messages inside each other count too. */
  g_string_assign (s, "From: deep@example.com\nSubject: rfc822\n");
  for (int i = 0; i < 300; i++)
    g_string_append (s, "Content-Type: message/rfc822\n\nSubject: inner\n");
  g_string_append (s, "Content-Type: text/plain\n\nleaf\n");
  msg = parse_bytes (s->str, s->len);
  g_assert_cmpstr (msg->subject, ==, "rfc822");
  g_assert_cmpuint (msg->attachments->len, <=, 65);
  g_assert_true (has_warning_containing (msg, "nested deeper than 64 levels"));
  tm_message_free (&msg);
}

static void
test_message_warnings_are_bounded (void)
{
  g_autoptr (GString) s = g_string_new ("From: a@example.com\n");
  for (int i = 0; i < 500; i++)
    g_string_append_printf (s, "X-Bad-%d: \xff\xfe\n", i);
  for (int i = 0; i < 500; i++)
    g_string_append_printf (s, "Content-Type: bogus%d\n", i);
  g_string_append (s, "\nbody\n");
  TmMessage *msg = parse_bytes (s->str, s->len);
  g_assert_cmpuint (msg->warnings->len, <=, 33);
  g_assert_cmpuint (tm_message_header_count (msg, "content-type"), ==, 500);
  tm_message_free (&msg);
}

static void
test_message_attachments_are_bounded (void)
{
  g_autoptr (GString) s = g_string_new ("From: a@example.com\nContent-Type: multipart/mixed; boundary=B\n\n"
                                        "--B\nContent-Type: text/plain\n\nthe body\n");
  for (int i = 0; i < 2000; i++)
    g_string_append_printf (s, "--B\nContent-Type: application/octet-stream; name=f%d.bin\n\nxx\n", i);
  g_string_append (s, "--B--\n");
  TmMessage *msg = parse_bytes (s->str, s->len);
  g_assert_cmpstr (msg->body_text, ==, "the body");
  g_assert_cmpuint (msg->attachments->len, ==, 500);
  g_assert_cmpstr (attachment_at (msg, 499)->filename, ==, "f499.bin");
  g_assert_true (has_warning_containing (msg, "more than 500 attachments"));
  tm_message_free (&msg);
}

/* --- headers and hash ---------------------------------------------------------- */

static void
test_message_header_lookup (void)
{
  static const char raw[] =
    "Received: one\nReceived: two\nreceived: three\nX-Mixed-Case: Value\nSubject:   spaced  \n"
    "X-Folded: a\n  b\n\tc\nX-Empty:\n\nbody";
  TmMessage *msg = parse_bytes (raw, strlen (raw));
  g_assert_cmpuint (tm_message_header_count (msg, "RECEIVED"), ==, 3);
  g_assert_cmpuint (tm_message_header_count (msg, "x-mixed-case"), ==, 1);
  g_assert_cmpuint (tm_message_header_count (msg, "X-Absent"), ==, 0);
  g_assert_cmpstr (tm_message_header (msg, "received"), ==, "one");
  g_assert_cmpstr (tm_message_header (msg, "X-MIXED-CASE"), ==, "Value");
  g_assert_cmpstr (tm_message_header (msg, "subject"), ==, "spaced");
  g_assert_cmpstr (tm_message_header (msg, "X-Folded"), ==, "a  b\tc");
  g_assert_cmpstr (tm_message_header (msg, "X-Empty"), ==, "");
  g_assert_null (tm_message_header (msg, "X-Absent"));
  const TmHeader *third = g_ptr_array_index (msg->headers, 2);
  g_assert_cmpstr (third->name, ==, "received");
  tm_message_free (&msg);
}

static char *
hash_of (const char *raw)
{
  TmMessage *msg = parse_bytes (raw, strlen (raw));
  char *hash = g_strdup (msg->content_hash);
  tm_message_free (&msg);
  return hash;
}

/* A value that starts on a continuation line loses the folding white
 * space, as message.h promises (found by fuzz-message). */
static void
test_value_on_continuation_line (void)
{
  static const char raw[] = "From: a@example.com\nSubject:\n   folded start\n\nbody\n";
  TmMessage *msg = parse_bytes (raw, strlen (raw));
  g_assert_cmpstr (msg->subject, ==, "folded start");
  gboolean found = FALSE;
  for (guint i = 0; i < msg->headers->len; i++)
    {
      const TmHeader *header = g_ptr_array_index (msg->headers, i);
      if (g_ascii_strcasecmp (header->name, "Subject") == 0)
        {
          g_assert_cmpstr (header->value, ==, "folded start");
          found = TRUE;
        }
    }
  g_assert_true (found);
  tm_message_free (&msg);
}

static void
test_message_hash_only_without_message_id (void)
{
  /* The daemon asks for the hash only when the Message-ID cannot be the key. */
  static const char with_id[] = "From: a@example.com\nMessage-ID: <k@example.com>\n\nbody\n";
  static const char without_id[] = "From: a@example.com\nSubject: no id\n\nbody\n";
  TmParseOptions options = { .hash_only_without_message_id = TRUE };
  TmMessage *msg = tm_message_parse (with_id, strlen (with_id), &options);
  g_assert_cmpstr (msg->message_id, ==, "k@example.com");
  g_assert_null (msg->content_hash);
  tm_message_free (&msg);
  msg = tm_message_parse (without_id, strlen (without_id), &options);
  g_assert_null (msg->message_id);
  g_autofree char *expected = hash_of (without_id);
  g_assert_cmpstr (msg->content_hash, ==, expected);
  tm_message_free (&msg);
}

static void
test_message_hash_stability (void)
{
  static const char lf[] =
    "From: a@example.com\nSubject: hash\n folded\nMessage-ID: <h@example.com>\n\nline one\nline two\n";
  static const char crlf[] =
    "From: a@example.com\r\nSubject: hash\r\n folded\r\nMessage-ID: <h@example.com>\r\n\r\nline one\r\nline two\r\n";
  static const char retried[] =
    "Return-Path: <a@example.com>\nReceived: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\n"
    "Delivered-To: support@example.com\nX-Original-To: support@example.com\n"
    "Authentication-Results: mx; spf=pass\nARC-Seal: i=1; a=rsa-sha256\n"
    "From: a@example.com\nSubject: hash\n folded\nMessage-ID: <h@example.com>\n"
    "X-Ticket-ID: 5\n\nline one\nline two\n";
  static const char other_body[] =
    "From: a@example.com\nSubject: hash\n folded\nMessage-ID: <h@example.com>\n\nline one\nline 2\n";
  static const char other_header[] =
    "From: a@example.com\nSubject: hash!\n folded\nMessage-ID: <h@example.com>\n\nline one\nline two\n";
  static const char with_dkim[] =
    "DKIM-Signature: v=1; d=example.com\nFrom: a@example.com\nSubject: hash\n folded\n"
    "Message-ID: <h@example.com>\n\nline one\nline two\n";

  g_autofree char *h_lf = hash_of (lf);
  g_autofree char *h_crlf = hash_of (crlf);
  g_autofree char *h_retried = hash_of (retried);
  g_autofree char *h_body = hash_of (other_body);
  g_autofree char *h_header = hash_of (other_header);
  g_autofree char *h_dkim = hash_of (with_dkim);
  g_autofree char *h_lf_again = hash_of (lf);

  g_assert_cmpstr (h_lf, ==, h_lf_again);
  g_assert_cmpstr (h_lf, ==, h_crlf);
  g_assert_cmpstr (h_lf, ==, h_retried);
  g_assert_cmpstr (h_lf, !=, h_body);
  g_assert_cmpstr (h_lf, !=, h_header);
  g_assert_cmpstr (h_lf, !=, h_dkim);
  for (const char *p = h_lf; *p != '\0'; p++)
    g_assert_true (g_ascii_isxdigit (*p) && !g_ascii_isupper (*p));
}

static void
test_message_hash_fixture_crlf_lf (void)
{
  /* A CRLF fixture converted to LF hashes the same. */
  gsize length;
  g_autofree char *raw = read_fixture ("persian-utf8.eml", &length);
  g_autoptr (GString) lf = g_string_new (NULL);
  for (gsize i = 0; i < length; i++)
    if (!(raw[i] == '\r' && i + 1 < length && raw[i + 1] == '\n'))
      g_string_append_c (lf, raw[i]);
  g_assert_cmpuint (lf->len, <, length);
  TmMessage *a = parse_bytes (raw, length);
  TmMessage *b = parse_bytes (lf->str, lf->len);
  g_assert_cmpstr (a->content_hash, ==, b->content_hash);
  g_assert_cmpstr (a->body_text, ==, b->body_text);
  g_assert_cmpuint (attachment_at (a, 0)->size, ==, attachment_at (b, 0)->size);
  tm_message_free (&a);
  tm_message_free (&b);
}

/* --- big, truncated mail --------------------------------------------------------- */

/* Peak resident memory since the last reset, in kB; -1 when unknown. */
static gint64
peak_rss_kb (void)
{
  g_autofree char *status = NULL;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1;
  const char *line = strstr (status, "VmHWM:");
  return line != NULL ? g_ascii_strtoll (line + 6, NULL, 10) : -1;
}

static gboolean
reset_peak_rss (void)
{
  /* Not g_file_set_contents: it replaces files by renaming, /proc refuses. */
  FILE *f = fopen ("/proc/self/clear_refs", "w");
  if (f == NULL)
    return FALSE;
  gboolean ok = fputs ("5", f) >= 0;
  return fclose (f) == 0 && ok;
}

static void
test_message_big_truncated_attachment (void)
{
  const gsize attachment_size = 30 * 1024 * 1024;
  const gsize kept = 10 * 1024 * 1024;

  guchar *blob = g_malloc (attachment_size);
  GRand *rand = g_rand_new_with_seed (30);
  for (gsize i = 0; i < attachment_size; i += 4)
    {
      guint32 r = g_rand_int (rand);
      memcpy (blob + i, &r, MIN (4, attachment_size - i));
    }
  g_rand_free (rand);
  g_autofree char *encoded = g_base64_encode (blob, attachment_size);
  g_free (blob);

  GString *mail = g_string_new ("From: Big <big@example.com>\r\nTo: support@example.com\r\n"
                                "Subject: =?UTF-8?B?2YHYp9iq2YjYsdipINmD2KjZitix2Kk=?=\r\n"
                                "Date: Fri, 01 Nov 2024 10:00:00 +0000\r\n"
                                "Message-ID: <big@example.com>\r\nMIME-Version: 1.0\r\n"
                                "Content-Type: multipart/mixed; boundary=\"big\"\r\n\r\n"
                                "--big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                                "The scan is attached.\r\n"
                                "--big\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n"
                                "Content-Disposition: attachment; filename=\"scan.pdf\"\r\n"
                                "Content-Transfer-Encoding: base64\r\n\r\n");
  gsize encoded_length = strlen (encoded);
  for (gsize i = 0; i < encoded_length; i += 76)
    {
      g_string_append_len (mail, encoded + i, (gssize) MIN (76, encoded_length - i));
      g_string_append (mail, "\r\n");
    }
  g_string_append (mail, "--big--\r\n");
  g_clear_pointer (&encoded, g_free);
  gsize original_size = mail->len;
  g_assert_cmpuint (original_size, >, 40 * 1024 * 1024);

  /* The milter keeps the first 10 MB. */
  char *head = g_memdup2 (mail->str, kept);
  g_string_free (mail, TRUE);

  gboolean can_measure = reset_peak_rss ();
  gint64 before = peak_rss_kb ();
  TmParseOptions options = { .truncated = TRUE, .original_size = original_size };
  TmMessage *msg = tm_message_parse (head, kept, &options);
  gint64 after = peak_rss_kb ();
  assert_message_well_formed (msg);

  g_assert_cmpstr (msg->subject, ==, "فاتورة كبيرة");
  g_assert_cmpstr (msg->body_text, ==, "The scan is attached.");
  g_assert_cmpuint (msg->attachments->len, ==, 1);
  g_assert_cmpstr (attachment_at (msg, 0)->filename, ==, "scan.pdf");
  g_assert_cmpuint (attachment_at (msg, 0)->size, >, kept / 2);
  g_assert_cmpuint (attachment_at (msg, 0)->size, <, kept);
  g_assert_true (msg->truncated);
  g_assert_cmpuint (msg->size, ==, original_size);
  g_assert_true (has_warning_containing (msg, "truncated"));

  /* Neither the 10 MB input nor the 7.5 MB decoded attachment may be
   * copied: the peak grows by far less than either. */
  if (can_measure && before > 0 && after > 0)
    {
      if (g_test_verbose ())
        g_test_message ("peak RSS grew by %" G_GINT64_FORMAT " kB while parsing", after - before);
      g_assert_cmpint (after - before, <, 6 * 1024);
    }
  else
    g_test_message ("peak RSS cannot be measured here; memory bound not checked");

  tm_message_free (&msg);
  g_free (head);
}

/* --- robustness -------------------------------------------------------------------- */

static void
test_message_random_junk (void)
{
  GRand *rand = g_rand_new_with_seed (20241101);
  g_autoptr (GPtrArray) seeds = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GArray) seed_lengths = g_array_new (FALSE, FALSE, sizeof (gsize));
  for (guint i = 0; all_fixtures[i] != NULL; i++)
    {
      gsize length;
      g_ptr_array_add (seeds, read_fixture (all_fixtures[i], &length));
      g_array_append_val (seed_lengths, length);
    }
  static const char *const fragments[] = {
    "\n--", "=?utf-8?B?", "?=", "Content-Type: multipart/mixed; boundary=x\n", "\n\n",
    "Content-Transfer-Encoding: base64\n", "charset=", "&#x", "<a href=", "\r\n", "\0",
    "Content-Type: message/rfc822\n\n", "=\n", "\xff", "From: <@>\n", "References: <\n",
  };

  for (guint round = 0; round < 3000; round++)
    {
      g_autoptr (GString) input = g_string_new (NULL);
      if (round % 3 == 0)
        {
          /* Pure noise, biased towards mail-ish bytes. */
          gsize length = (gsize) g_rand_int_range (rand, 0, 600);
          for (gsize i = 0; i < length; i++)
            {
              guint32 pick = g_rand_int_range (rand, 0, 10);
              g_string_append_c (input, pick < 2 ? '\n' : pick < 3 ? ':' : (char) g_rand_int_range (rand, 0, 256));
            }
        }
      else
        {
          guint which = (guint) g_rand_int_range (rand, 0, (gint32) seeds->len);
          g_string_append_len (input, g_ptr_array_index (seeds, which),
                               (gssize) g_array_index (seed_lengths, gsize, which));
          guint mutations = (guint) g_rand_int_range (rand, 1, 12);
          for (guint m = 0; m < mutations && input->len > 0; m++)
            {
              gsize at = (gsize) g_rand_int_range (rand, 0, (gint32) input->len);
              switch (g_rand_int_range (rand, 0, 4))
                {
                case 0:
                  input->str[at] = (char) g_rand_int_range (rand, 0, 256);
                  break;
                case 1:
                  g_string_truncate (input, at);
                  break;
                case 2:
                  {
                    const char *f = fragments[g_rand_int_range (rand, 0, G_N_ELEMENTS (fragments))];
                    g_string_insert_len (input, (gssize) at, f, *f == '\0' ? 1 : (gssize) strlen (f));
                  }
                  break;
                default:
                  {
                    gsize span = (gsize) g_rand_int_range (rand, 1, 40);
                    g_string_erase (input, (gssize) at, (gssize) MIN (input->len - at, span));
                  }
                  break;
                }
            }
        }
      TmMessage *msg = parse_bytes (input->str, input->len);
      tm_message_free (&msg);

      g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *converted = charset (input->str, input->len,
                                            round % 2 ? "iso-8859-6" : "utf-8", warnings);
      /* tm_html_to_text takes UTF-8, as the parser hands it. */
      g_autofree char *text = html (converted);
    }
  g_rand_free (rand);
}

typedef struct {
  GPtrArray *inputs;        /* of GBytes */
  GPtrArray *expected;      /* content hashes from one thread */
  gint failures;
} ThreadJob;

static gpointer
parse_all_in_thread (gpointer data)
{
  ThreadJob *job = data;
  for (int round = 0; round < 15; round++)
    for (guint i = 0; i < job->inputs->len; i++)
      {
        gsize length;
        const char *raw = g_bytes_get_data (g_ptr_array_index (job->inputs, i), &length);
        TmMessage *msg = tm_message_parse (raw, length, NULL);
        if (strcmp (msg->content_hash, g_ptr_array_index (job->expected, i)) != 0
            || !g_utf8_validate (msg->body_text, -1, NULL))
          g_atomic_int_inc (&job->failures);
        tm_message_free (&msg);
      }
  return NULL;
}

static void
test_message_concurrent_parsing (void)
{
  ThreadJob job = { g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref),
                    g_ptr_array_new_with_free_func (g_free), 0 };
  for (guint i = 0; all_fixtures[i] != NULL; i++)
    {
      gsize length;
      char *raw = read_fixture (all_fixtures[i], &length);
      GBytes *bytes = g_bytes_new_take (raw, length);
      g_ptr_array_add (job.inputs, bytes);
      TmMessage *msg = tm_message_parse (raw, length, NULL);
      g_ptr_array_add (job.expected, g_strdup (msg->content_hash));
      tm_message_free (&msg);
    }
  GThread *threads[6];
  for (guint t = 0; t < G_N_ELEMENTS (threads); t++)
    threads[t] = g_thread_new ("parse", parse_all_in_thread, &job);
  for (guint t = 0; t < G_N_ELEMENTS (threads); t++)
    g_thread_join (threads[t]);
  g_assert_cmpint (job.failures, ==, 0);
  g_ptr_array_unref (job.inputs);
  g_ptr_array_unref (job.expected);
}

static void
test_message_every_fixture_is_well_formed (void)
{
  for (guint i = 0; all_fixtures[i] != NULL; i++)
    {
      TmMessage *msg = parse_fixture (all_fixtures[i]);
      /* Warnings are short sentences, one line each. */
      for (guint w = 0; w < msg->warnings->len; w++)
        {
          const char *warning = g_ptr_array_index (msg->warnings, w);
          g_assert_null (strchr (warning, '\n'));
          g_assert_cmpuint (strlen (warning), <, 160);
        }
      tm_message_free (&msg);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tm_message_library_init ();

  g_test_add_func ("/charset/windows-1256-and-aliases", test_charset_windows_1256_and_aliases);
  g_test_add_func ("/charset/iso-8859-6-aliases", test_charset_iso_8859_6_aliases);
  g_test_add_func ("/charset/utf8-aliases", test_charset_utf8_aliases);
  g_test_add_func ("/charset/unknown-declared", test_charset_unknown_declared);
  g_test_add_func ("/charset/undeclared-labels", test_charset_undeclared_labels);
  g_test_add_func ("/charset/hostile-names", test_charset_hostile_names);
  g_test_add_func ("/charset/partial-fit-not-accepted", test_charset_partial_fit_is_not_accepted);
  g_test_add_func ("/charset/last-resort-replacement", test_charset_last_resort_replacement);
  g_test_add_func ("/charset/nul-bytes", test_charset_nul_bytes);
  g_test_add_func ("/charset/utf8-damage", test_charset_utf8_damage);
  g_test_add_func ("/charset/empty-and-ascii", test_charset_empty_and_ascii);

  g_test_add_func ("/html/entities", test_html_entities);
  g_test_add_func ("/html/drops-script-style-head", test_html_drops_script_style_head);
  g_test_add_func ("/html/blocks-and-lists", test_html_blocks_and_lists);
  g_test_add_func ("/html/links", test_html_links);
  g_test_add_func ("/html/broken-markup", test_html_broken_markup);
  g_test_add_func ("/html/linear-on-hostile-input", test_html_linear_on_hostile_input);

  g_test_add_func ("/message/arabic/windows-1256", test_message_arabic_windows_1256);
  g_test_add_func ("/message/arabic/iso-8859-6", test_message_arabic_iso_8859_6);
  g_test_add_func ("/message/arabic/raw-8bit-cp1256-header", test_message_arabic_raw_cp1256_header);
  g_test_add_func ("/message/persian/utf8-alternative-attachment", test_message_persian_utf8);
  g_test_add_func ("/message/persian/raw-8bit-header", test_message_persian_raw_8bit_header);
  g_test_add_func ("/message/charset/custom-fallbacks", test_message_custom_fallbacks);
  g_test_add_func ("/message/english-plain", test_message_english_plain);
  g_test_add_func ("/message/html-only", test_message_html_only);
  g_test_add_func ("/message/no-message-id", test_message_no_message_id);
  g_test_add_func ("/message/unknown-charset", test_message_unknown_charset);
  g_test_add_func ("/message/truncated-multipart", test_message_truncated_multipart);
  g_test_add_func ("/message/empty-body", test_message_empty_body);
  g_test_add_func ("/message/missing-headers", test_message_missing_headers);
  g_test_add_func ("/message/forged-ticket-header", test_message_forged_ticket_header);
  g_test_add_func ("/message/threading/reply-with-tag", test_message_reply_with_tag);
  g_test_add_func ("/message/threading/reply-without-tag", test_message_reply_without_tag);
  g_test_add_func ("/message/threading/other-system-tags", test_message_other_system_tags);
  g_test_add_func ("/message/nul-in-header", test_message_nul_in_header);
  g_test_add_func ("/message/encoded-word-malformed", test_message_encoded_word_malformed);
  g_test_add_func ("/message/forwarded-rfc822", test_message_forwarded_rfc822);
  g_test_add_func ("/message/degenerate/empty-input", test_message_empty_input);
  g_test_add_func ("/message/degenerate/headers-only", test_message_headers_only);
  g_test_add_func ("/message/degenerate/binary-junk", test_message_binary_junk);
  g_test_add_func ("/message/degenerate/invalid-date", test_message_invalid_date);
  g_test_add_func ("/message/mime/body-choice", test_message_body_choice);
  g_test_add_func ("/message/mime/deep-nesting-bounded", test_message_deep_nesting);
  g_test_add_func ("/message/warnings-bounded", test_message_warnings_are_bounded);
  g_test_add_func ("/message/mime/attachments-bounded", test_message_attachments_are_bounded);
  g_test_add_func ("/message/headers/case-insensitive-lookup", test_message_header_lookup);
  g_test_add_func ("/message/hash/stable-across-retries", test_message_hash_stability);
  g_test_add_func ("/message/hash/only-without-message-id", test_message_hash_only_without_message_id);
  g_test_add_func ("/message/headers/value-on-continuation-line", test_value_on_continuation_line);
  g_test_add_func ("/message/hash/crlf-fixture-equals-lf", test_message_hash_fixture_crlf_lf);
  g_test_add_func ("/message/big/truncated-30mb-attachment", test_message_big_truncated_attachment);
  g_test_add_func ("/message/robustness/random-junk", test_message_random_junk);
  g_test_add_func ("/message/robustness/concurrent-parsing", test_message_concurrent_parsing);
  g_test_add_func ("/message/robustness/every-fixture-well-formed", test_message_every_fixture_is_well_formed);

  return g_test_run ();
}
