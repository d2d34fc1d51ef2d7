/* test-template.c - loading, checking and rendering templates/LANG/NAME.txt.
 *
 * Each test writes its own template tree into a fresh directory from
 * g_dir_make_tmp and removes it at the end (remove_tree: the tree has LANG
 * subdirectories, which tm_test_remove_directory does not handle). The
 * shipped templates are checked too, from the directory named by
 * TM_TEMPLATE_DIR; without it that test is skipped. Links template.c only.
 */
#include "template.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Removes PATH and everything below it; symbolic links are removed, never
 * followed. Asserts that every removal worked. */
static void
remove_tree (const char *path)
{
  GStatBuf status;
  g_assert_cmpint (g_lstat (path, &status), ==, 0);
  if (S_ISDIR (status.st_mode))
    {
      /* Tests make directories unreadable on purpose; undo that first. */
      g_assert_cmpint (g_chmod (path, 0700), ==, 0);
      g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
      g_assert_nonnull (dir);
      for (const char *name; (name = g_dir_read_name (dir)) != NULL;)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          remove_tree (child);
        }
      g_assert_cmpint (g_rmdir (path), ==, 0);
    }
  else
    g_assert_cmpint (g_unlink (path), ==, 0);
}

static char *
make_tree (void)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp ("tm-template-XXXXXX", &error);
  g_assert_no_error (error);
  return dir;
}

/* Writes DIR/LANGUAGE/FILE_NAME with LENGTH bytes of CONTENTS (-1: up to
 * the NUL). Returns the file's path. */
static char *
write_file (const char *dir, const char *language, const char *file_name, const char *contents,
            gssize length)
{
  g_autofree char *language_dir = g_build_filename (dir, language, NULL);
  g_assert_cmpint (g_mkdir_with_parents (language_dir, 0700), ==, 0);
  char *path = g_build_filename (language_dir, file_name, NULL);
  g_autoptr (GError) error = NULL;
  g_file_set_contents (path, contents, length, &error);
  g_assert_no_error (error);
  return path;
}

static GHashTable *
new_values (void)
{
  return g_hash_table_new (g_str_hash, g_str_equal);
}

/* Loads a tree holding only en/ack.txt with CONTENTS and renders it with
 * VALUES. */
static void
render_one (const char *contents, GHashTable *values, char **subject, char **body)
{
  g_autofree char *dir = make_tree ();
  g_autofree char *path = write_file (dir, "en", "ack.txt", contents, -1);
  g_autoptr (GError) error = NULL;
  TmTemplateSet *set = tm_template_set_load (dir, &error);
  g_assert_no_error (error);
  const TmTemplate *template_ = tm_template_set_lookup (set, "en", "ack");
  g_assert_nonnull (template_);
  g_assert_cmpstr (tm_template_path (template_), ==, path);
  tm_template_render (template_, values, subject, body);
  g_assert_true (g_utf8_validate (*subject, -1, NULL));
  g_assert_true (g_utf8_validate (*body, -1, NULL));
  tm_template_set_free (&set);
  g_assert_null (set);
  remove_tree (dir);
}

static void
assert_no_control_characters (const char *text)
{
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      g_assert_false (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 || c == 0x2029);
    }
}

static void
test_placeholders_list (void)
{
  const char *const *names = tm_template_placeholders ();
  const char *expected[] = {
    "ticket.id", "ticket.tag", "ticket.subject", "customer.name", "customer.address",
    "queue.name", "queue.address", "response.hours", "response.due", "hours.timezone",
    "hours.open", "hours.next_open",
  };
  g_assert_cmpuint (g_strv_length ((char **) names), ==, G_N_ELEMENTS (expected));
  for (gsize i = 0; i < G_N_ELEMENTS (expected); i++)
    g_assert_true (g_strv_contains (names, expected[i]));
}

/* Every name in the list is accepted by the loader and renders its value. */
static void
test_render_every_placeholder (void)
{
  const char *const *names = tm_template_placeholders ();
  g_autoptr (GString) contents = g_string_new ("Subject: {{ticket.tag}}\n\n");
  g_autoptr (GHashTable) values = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g_autoptr (GString) expected = g_string_new (NULL);
  for (gsize i = 0; names[i] != NULL; i++)
    {
      g_string_append_printf (contents, "%s={{%s}}\n", names[i], names[i]);
      g_hash_table_insert (values, (gpointer) names[i], g_strdup_printf ("value %zu", i));
      g_string_append_printf (expected, "%s=value %zu\n", names[i], i);
    }
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one (contents->str, values, &subject, &body);
  g_assert_cmpstr (subject, ==, "value 1");
  g_assert_cmpstr (body, ==, expected->str);
}

static void
test_render_simple (void)
{
  g_autoptr (GHashTable) values = new_values ();
  g_hash_table_insert (values, "ticket.id", "1042");
  g_hash_table_insert (values, "ticket.tag", "[Ticket#1042]");
  g_hash_table_insert (values, "ticket.subject", "printer on fire");
  g_hash_table_insert (values, "customer.name", "Layla");
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one ("Subject: {{ticket.tag}} {{ ticket.subject }}\n"
              "\n"
              "Dear {{customer.name}},\n"
              "ticket {{\tticket.id  }} at {{queue.name}}.\n"
              "Literal }} and { braces } stay.\n",
              values, &subject, &body);
  g_assert_cmpstr (subject, ==, "[Ticket#1042] printer on fire");
  /* queue.name has no value: it renders as nothing. */
  g_assert_cmpstr (body, ==,
                   "Dear Layla,\n"
                   "ticket 1042 at .\n"
                   "Literal }} and { braces } stay.\n");
}

static void
test_render_without_values (void)
{
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one ("Subject: Hello {{customer.name}}\n\nTicket {{ticket.id}}", NULL, &subject,
              &body);
  g_assert_cmpstr (subject, ==, "Hello ");
  /* No newline at the end of the file: none is added. */
  g_assert_cmpstr (body, ==, "Ticket ");
}

static void
test_render_text_kept (void)
{
  g_autoptr (GHashTable) values = new_values ();
  g_hash_table_insert (values, "ticket.id", "7");
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one ("Subject: تذكرة رقم {{ticket.id}}\n"
              "\n"
              "\tindented with a tab\n"
              "شمارهٔ تیکت: {{ticket.id}} می‌خواهیم\n"
              "\n"
              "\n",
              values, &subject, &body);
  g_assert_cmpstr (subject, ==, "تذكرة رقم 7");
  g_assert_cmpstr (body, ==, "\tindented with a tab\nشمارهٔ تیکت: 7 می‌خواهیم\n\n\n");
}

static void
test_header_name_any_case (void)
{
  const char *files[] = {
    "subject: Hi {{ticket.id}}\n\nbody\n",
    "SUBJECT:Hi {{ticket.id}}\n\nbody\n",
    "SuBjEcT: \t Hi {{ticket.id}} \t \n\nbody\n",
  };
  g_autoptr (GHashTable) values = new_values ();
  g_hash_table_insert (values, "ticket.id", "3");
  for (gsize i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *subject = NULL;
      g_autofree char *body = NULL;
      render_one (files[i], values, &subject, &body);
      g_assert_cmpstr (subject, ==, "Hi 3");
      g_assert_cmpstr (body, ==, "body\n");
    }
}

static void
test_crlf_file (void)
{
  g_autoptr (GHashTable) values = new_values ();
  g_hash_table_insert (values, "ticket.id", "9");
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one ("Subject: Ticket {{ticket.id}}\r\n\r\nLine one {{ticket.id}}\r\n\r\nLine two\r\n",
              values, &subject, &body);
  g_assert_cmpstr (subject, ==, "Ticket 9");
  g_assert_cmpstr (body, ==, "Line one 9\n\nLine two\n");
}

static void
test_byte_order_mark (void)
{
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one ("\xEF\xBB\xBFSubject: with BOM\n\nbody\n", NULL, &subject, &body);
  g_assert_cmpstr (subject, ==, "with BOM");
  g_assert_cmpstr (body, ==, "body\n");
}

/* A value is data: a placeholder inside it stays as written. */
static void
test_render_one_pass (void)
{
  g_autoptr (GHashTable) values = new_values ();
  g_hash_table_insert (values, "ticket.id", "1042");
  g_hash_table_insert (values, "ticket.subject", "{{ticket.id}} and {{ queue.address }}");
  g_hash_table_insert (values, "customer.name", "{{customer.name}}");
  g_hash_table_insert (values, "queue.address", "support@example.com");
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one ("Subject: [{{ticket.id}}] {{ticket.subject}}\n\nHi {{customer.name}}\n", values,
              &subject, &body);
  g_assert_cmpstr (subject, ==, "[1042] {{ticket.id}} and {{ queue.address }}");
  g_assert_cmpstr (body, ==, "Hi {{customer.name}}\n");
}

static void
test_render_control_characters (void)
{
  g_autoptr (GHashTable) values = new_values ();
  g_hash_table_insert (values, "ticket.subject",
                       "a\r\nBcc: victim@example.com\tb\x1b[31mc\x7f" "d\xc2\x85" "e\xc2\x9f"
                       "f\xe2\x80\xa8g\xe2\x80\xa9h\x01");
  g_hash_table_insert (values, "customer.name", "x\n\nContent-Type: text/html\ny");
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one ("Subject: {{ticket.subject}}\n\n{{customer.name}}|{{ticket.subject}}\n", values,
              &subject, &body);
  g_assert_cmpstr (subject, ==,
                   "a  Bcc: victim@example.com b [31mc d e f g h ");
  assert_no_control_characters (subject);
  g_assert_cmpstr (body, ==,
                   "x  Content-Type: text/html y|a  Bcc: victim@example.com b [31mc d e f g h \n");
  /* The only line break in the body is the template's own. */
  g_assert_cmpstr (strchr (body, '\n'), ==, "\n");
}

static void
test_render_invalid_utf8 (void)
{
  g_autoptr (GHashTable) values = new_values ();
  /* A stray continuation byte, a truncated sequence, an overlong '/', a
     UTF-16 surrogate and a byte that never occurs in UTF-8. */
  g_hash_table_insert (values, "ticket.subject",
                       "a\x80" "b\xc3" "c\xc0\xaf" "d\xed\xa0\x80" "e\xff" "f\xd9\x85");
  g_hash_table_insert (values, "customer.name", "\xe2\x82");
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one ("Subject: {{ticket.subject}}\n\n{{customer.name}}.\n", values, &subject, &body);
  g_assert_cmpstr (subject, ==,
                   "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
                   "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "e\xef\xbf\xbd" "f\xd9\x85");
  g_assert_cmpstr (body, ==, "\xef\xbf\xbd\xef\xbf\xbd.\n");
}

static char *
repeat (const char *unit, gsize count)
{
  GString *out = g_string_new (NULL);
  for (gsize i = 0; i < count; i++)
    g_string_append (out, unit);
  return g_string_free (out, FALSE);
}

static void
test_render_cut_long_values (void)
{
  struct { const char *unit; gsize count; gsize subject_chars; gsize body_chars; } cases[] = {
    { "a", 199, 199, 199 },
    { "a", 200, 200, 200 },
    { "a", 201, 200, 201 },
    { "a", 1000, 200, 1000 },
    { "a", 1001, 200, 1000 },
    { "ع", 201, 200, 201 },        /* characters, not bytes */
    { "ع", 1001, 200, 1000 },
    { "\xff", 300, 200, 300 },     /* each bad byte is one U+FFFD */
    { "a", 1024 * 1024, 200, 1000 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *value = repeat (cases[i].unit, cases[i].count);
      g_autoptr (GHashTable) values = new_values ();
      g_hash_table_insert (values, "ticket.subject", value);
      g_autofree char *subject = NULL;
      g_autofree char *body = NULL;
      render_one ("Subject: {{ticket.subject}}\n\n{{ticket.subject}}", values, &subject, &body);
      g_assert_cmpuint (g_utf8_strlen (subject, -1), ==, cases[i].subject_chars);
      g_assert_cmpuint (g_utf8_strlen (body, -1), ==, cases[i].body_chars);
      gboolean subject_cut = cases[i].count > 200;
      gboolean body_cut = cases[i].count > 1000;
      g_assert_true (g_str_has_suffix (subject, "...") == subject_cut);
      g_assert_true (g_str_has_suffix (body, "...") == body_cut);
      if (subject_cut)
        {
          /* What is kept is the start of the value. */
          g_autofree char *kept = g_utf8_substring (subject, 0, 197);
          g_autofree char *sanitised = g_utf8_make_valid (value, -1);
          g_assert_true (g_str_has_prefix (sanitised, kept));
        }
    }
}

/* Each limit applies per value: two long values in one subject are each cut. */
static void
test_render_cut_per_value (void)
{
  g_autofree char *value = repeat ("b", 500);
  g_autoptr (GHashTable) values = new_values ();
  g_hash_table_insert (values, "ticket.subject", value);
  g_hash_table_insert (values, "customer.name", value);
  g_autofree char *subject = NULL;
  g_autofree char *body = NULL;
  render_one ("Subject: {{ticket.subject}}|{{customer.name}}\n\nx\n", values, &subject, &body);
  g_autofree char *one = g_strconcat (value + 303, "...", NULL);   /* 197 b + ... */
  g_autofree char *expected = g_strconcat (one, "|", one, NULL);
  g_assert_cmpstr (subject, ==, expected);
}

typedef struct {
  const char *name;        /* for messages */
  const char *contents;
  gssize length;           /* -1: up to the NUL */
  guint line;
  const char *says;        /* part of the message */
} BrokenCase;

static const BrokenCase broken_cases[] = {
  { "unknown placeholder in the body", "Subject: Hi\n\nDear {{customer.name}},\n"
    "your number is {{ticket.number}}.\n", -1, 4, "unknown placeholder {{ticket.number}}" },
  { "unknown placeholder in the subject", "Subject: {{ticket.subjct}}\n\nx\n", -1, 1,
    "unknown placeholder {{ticket.subjct}}" },
  { "unknown placeholder after a CRLF header", "Subject: Hi\r\n\r\n\r\n{{ queue }}\r\n", -1, 4,
    "unknown placeholder {{queue}}" },
  { "upper-case placeholder", "Subject: Hi\n\n{{Ticket.ID}}\n", -1, 3, "malformed placeholder" },
  { "empty placeholder", "Subject: Hi\n\n{{ }}\n", -1, 3, "malformed placeholder" },
  { "placeholder with inner space", "Subject: Hi\n\n{{ticket id}}\n", -1, 3,
    "malformed placeholder" },
  { "triple braces", "Subject: Hi\n\n{{{ticket.id}}}\n", -1, 3, "malformed placeholder" },
  { "unterminated at the end", "Subject: Hi\n\nline\nnumber {{ticket.id", -1, 4,
    "unterminated \"{{\"" },
  { "unterminated across lines", "Subject: Hi\n\nnumber {{ticket.\nid}}\n", -1, 3,
    "unterminated \"{{\"" },
  { "unterminated in the subject", "Subject: {{ticket.id\n\nx\n", -1, 1, "unterminated" },
  { "single brace close", "Subject: Hi\n\n{{ticket.id}\n", -1, 3, "unterminated" },
  { "no Subject", "\nbody\n", -1, 1, "missing \"Subject:\"" },
  { "empty file", "", -1, 1, "not followed by a blank line" },
  { "two Subject lines", "Subject: one\nsubject: two\n\nx\n", -1, 2,
    "second Subject line (the first is on line 1)" },
  { "unknown header", "Subject: Hi\nFrom: us@example.com\n\nx\n", -1, 2,
    "unknown header \"From\"" },
  { "unknown header only", "Reply-To: us@example.com\n\nx\n", -1, 1, "unknown header" },
  { "no blank line at the end", "Subject: Hi\n", -1, 1, "not followed by a blank line" },
  { "no blank line before the body", "Subject: Hi\nDear customer, thanks\n", -1, 2,
    "blank line" },
  { "no blank line and a colon in the body", "Subject: Hi\nDear customer: thanks\n", -1, 2,
    "blank line" },
  { "folded Subject", "Subject: Hi\n there\n\nx\n", -1, 2, "folded" },
  { "empty Subject", "Subject:  \n\nx\n", -1, 1, "empty Subject" },
  { "invalid UTF-8 in the body", "Subject: Hi\n\nline\n\xe9t\xe9\n", -1, 4, "invalid UTF-8" },
  { "windows-1256 in the subject", "Subject: \xd1\xd3\xc7\xe1\xc9\n\nx\n", -1, 1,
    "invalid UTF-8" },
  { "NUL byte", "Subject: Hi\n\nbe\0fore\n", 21, 3, "NUL byte" },
  { "NUL byte in the headers", "Subj\0ect: Hi\n\nx\n", 16, 1, "NUL byte" },
  { "control character in the subject", "Subject: Hi\x1b[0m\n\nx\n", -1, 1,
    "control character U+001B in the Subject" },
  { "tab in the subject", "Subject: Hi\tthere\n\nx\n", -1, 1, "control character U+0009" },
  { "line separator in the subject", "Subject: Hi\xe2\x80\xa8there\n\nx\n", -1, 1,
    "control character U+2028" },
  { "form feed in the body", "Subject: Hi\n\nx\n\x0c\n", -1, 4,
    "control character U+000C in the body" },
  { "lone CR in the body", "Subject: Hi\n\na\rb\n", -1, 3, "control character U+000D" },
};

static void
test_broken (gconstpointer data)
{
  const BrokenCase *broken = data;
  g_autofree char *dir = make_tree ();
  /* A good template beside the broken one: one bad file fails the load. */
  g_autofree char *good = write_file (dir, "ar", "ack.txt", "Subject: Hi\n\nx\n", -1);
  g_autofree char *path = write_file (dir, "en", "ack.txt", broken->contents, broken->length);
  g_autoptr (GError) error = NULL;
  TmTemplateSet *set = tm_template_set_load (dir, &error);
  if (set != NULL)
    g_error ("%s: loaded", broken->name);
  g_assert_error (error, TM_TEMPLATE_ERROR, TM_TEMPLATE_ERROR_SYNTAX);
  g_autofree char *prefix = g_strdup_printf ("%s:%u: ", path, broken->line);
  if (!g_str_has_prefix (error->message, prefix) || strstr (error->message, broken->says) == NULL)
    g_error ("%s: message \"%s\", want \"%s...%s...\"", broken->name, error->message, prefix,
             broken->says);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  remove_tree (dir);
}

static void
assert_read_error (const char *dir, const char *names)
{
  g_autoptr (GError) error = NULL;
  TmTemplateSet *set = tm_template_set_load (dir, &error);
  g_assert_null (set);
  g_assert_error (error, TM_TEMPLATE_ERROR, TM_TEMPLATE_ERROR_READ);
  if (strstr (error->message, names) == NULL)
    g_error ("message \"%s\" does not name %s", error->message, names);
}

static void
test_missing_directory (void)
{
  g_autofree char *dir = make_tree ();
  g_autofree char *missing = g_build_filename (dir, "no-such-templates", NULL);
  assert_read_error (missing, missing);
  /* A file where the directory should be. */
  g_autofree char *file = g_build_filename (dir, "plain-file", NULL);
  g_assert_true (g_file_set_contents (file, "x", -1, NULL));
  assert_read_error (file, file);
  remove_tree (dir);
}

static void
test_unreadable_file (void)
{
  g_autofree char *dir = make_tree ();
  g_autofree char *good = write_file (dir, "en", "ack.txt", "Subject: Hi\n\nx\n", -1);
  /* A link to nothing: unreadable even for root, who ignores permissions. */
  g_autofree char *dangling = g_build_filename (dir, "en", "after-hours.txt", NULL);
  g_assert_cmpint (symlink ("does-not-exist.txt", dangling), ==, 0);
  assert_read_error (dir, dangling);
  g_assert_cmpint (g_unlink (dangling), ==, 0);

  /* A directory with a template's name. */
  g_autofree char *as_directory = g_build_filename (dir, "en", "survey.txt", NULL);
  g_assert_cmpint (g_mkdir (as_directory, 0700), ==, 0);
  assert_read_error (dir, as_directory);
  g_assert_cmpint (g_rmdir (as_directory), ==, 0);

  /* The same tree loads once the bad entries are gone. */
  g_autoptr (GError) error = NULL;
  TmTemplateSet *set = tm_template_set_load (dir, &error);
  g_assert_no_error (error);
  tm_template_set_free (&set);
  remove_tree (dir);
}

static void
test_unreadable_permissions (void)
{
  g_autofree char *dir = make_tree ();
  g_autofree char *file = write_file (dir, "en", "ack.txt", "Subject: Hi\n\nx\n", -1);
  g_assert_cmpint (g_chmod (file, 0), ==, 0);
  if (access (file, R_OK) == 0)
    {
      remove_tree (dir);
      g_test_skip ("permissions are not enforced for this user (root?)");
      return;
    }
  assert_read_error (dir, file);
  g_assert_cmpint (g_chmod (file, 0600), ==, 0);

  g_autofree char *language_dir = g_build_filename (dir, "en", NULL);
  g_assert_cmpint (g_chmod (language_dir, 0), ==, 0);
  assert_read_error (dir, language_dir);
  g_assert_cmpint (g_chmod (language_dir, 0700), ==, 0);

  g_assert_cmpint (g_chmod (dir, 0), ==, 0);
  assert_read_error (dir, dir);
  g_assert_cmpint (g_chmod (dir, 0700), ==, 0);
  remove_tree (dir);
}

static void
test_empty_directory (void)
{
  g_autofree char *dir = make_tree ();
  g_autoptr (GError) error = NULL;
  TmTemplateSet *set = tm_template_set_load (dir, &error);
  g_assert_no_error (error);
  g_assert_nonnull (set);
  g_assert_null (tm_template_set_lookup (set, "en", "ack"));
  g_assert_null (tm_template_set_languages (set, "ack")[0]);
  tm_template_set_free (&set);
  tm_template_set_free (&set);   /* clears the pointer, so twice is harmless */
  remove_tree (dir);
}

static void
test_languages_and_ignored_files (void)
{
  g_autofree char *dir = make_tree ();
  const char *good = "Subject: Hi\n\nx\n";
  const char *broken = "Subject: {{nope}}\n\nx\n";
  g_free (write_file (dir, "fa", "ack.txt", good, -1));
  g_free (write_file (dir, "en", "ack.txt", good, -1));
  g_free (write_file (dir, "pt-br", "ack.txt", good, -1));
  g_free (write_file (dir, "ar", "ack.txt", good, -1));
  g_free (write_file (dir, "ar", "after-hours.txt", good, -1));
  g_free (write_file (dir, "en", "Survey-2.txt", good, -1));
  /* None of these is a template, so their contents do not matter. */
  g_free (write_file (dir, "en", "ack.txt~", broken, -1));
  g_free (write_file (dir, "en", ".ack.txt.swp", broken, -1));
  g_free (write_file (dir, "en", "README", broken, -1));
  g_free (write_file (dir, "en", "old_ack.txt", broken, -1));
  g_free (write_file (dir, "en", ".txt", broken, -1));
  g_free (write_file (dir, "en", "ack.txt.orig", broken, -1));
  g_free (write_file (dir, ".git", "ack.txt", broken, -1));
  g_free (write_file (dir, "EN", "ack.txt", broken, -1));
  g_free (write_file (dir, "en_US", "ack.txt", broken, -1));
  g_autofree char *top_file = g_build_filename (dir, "ack.txt", NULL);
  g_assert_true (g_file_set_contents (top_file, broken, -1, NULL));

  g_autoptr (GError) error = NULL;
  TmTemplateSet *set = tm_template_set_load (dir, &error);
  g_assert_no_error (error);

  const char *const *ack = tm_template_set_languages (set, "ack");
  const char *want_ack[] = { "ar", "en", "fa", "pt-br", NULL };
  g_assert_true (g_strv_equal ((const char *const *) want_ack, ack));
  const char *const *after_hours = tm_template_set_languages (set, "after-hours");
  const char *want_after_hours[] = { "ar", NULL };
  g_assert_true (g_strv_equal ((const char *const *) want_after_hours, after_hours));
  g_assert_null (tm_template_set_languages (set, "survey")[0]);
  g_assert_cmpstr (tm_template_set_languages (set, "Survey-2")[0], ==, "en");

  g_assert_nonnull (tm_template_set_lookup (set, "pt-br", "ack"));
  g_assert_null (tm_template_set_lookup (set, "fa", "after-hours"));
  g_assert_null (tm_template_set_lookup (set, "de", "ack"));
  g_assert_null (tm_template_set_lookup (set, "EN", "ack"));
  g_assert_null (tm_template_set_lookup (set, "en", "ack.txt"));
  const TmTemplate *fa = tm_template_set_lookup (set, "fa", "ack");
  g_autofree char *fa_path = g_build_filename (dir, "fa", "ack.txt", NULL);
  g_assert_cmpstr (tm_template_path (fa), ==, fa_path);
  tm_template_set_free (&set);
  remove_tree (dir);
}

typedef struct {
  const TmTemplate *template_;
  GHashTable *values;
  char *subject;
  char *body;
} RenderJob;

static gpointer
render_in_thread (gpointer data)
{
  RenderJob *job = data;
  for (int i = 0; i < 200; i++)
    {
      g_autofree char *subject = NULL;
      g_autofree char *body = NULL;
      tm_template_render (job->template_, job->values, &subject, &body);
      if (i == 0)
        {
          job->subject = g_steal_pointer (&subject);
          job->body = g_steal_pointer (&body);
        }
      else if (g_strcmp0 (subject, job->subject) != 0 || g_strcmp0 (body, job->body) != 0)
        return GINT_TO_POINTER (FALSE);
    }
  return GINT_TO_POINTER (TRUE);
}

/* The set is read-only after loading: threads render the same template at
 * once and each gets its own, identical, result. */
static void
test_render_from_threads (void)
{
  g_autofree char *dir = make_tree ();
  g_free (write_file (dir, "en", "ack.txt", "Subject: {{ticket.tag}} {{ticket.subject}}\n\n"
                      "Dear {{customer.name}}, ticket {{ticket.id}}.\n", -1));
  g_autoptr (GError) error = NULL;
  TmTemplateSet *set = tm_template_set_load (dir, &error);
  g_assert_no_error (error);
  RenderJob jobs[4];
  GThread *threads[G_N_ELEMENTS (jobs)];
  for (gsize i = 0; i < G_N_ELEMENTS (jobs); i++)
    {
      jobs[i] = (RenderJob) { .template_ = tm_template_set_lookup (set, "en", "ack"),
                              .values = new_values () };
      g_hash_table_insert (jobs[i].values, "ticket.id", i % 2 ? "1" : "2");
      g_hash_table_insert (jobs[i].values, "customer.name", "Reza\nX-Evil: 1");
      threads[i] = g_thread_new ("render", render_in_thread, &jobs[i]);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (jobs); i++)
    {
      g_assert_true (GPOINTER_TO_INT (g_thread_join (threads[i])));
      g_assert_cmpstr (jobs[i].body, ==,
                       i % 2 ? "Dear Reza X-Evil: 1, ticket 1.\n"
                             : "Dear Reza X-Evil: 1, ticket 2.\n");
      g_free (jobs[i].subject);
      g_free (jobs[i].body);
      g_hash_table_unref (jobs[i].values);
    }
  tm_template_set_free (&set);
  remove_tree (dir);
}

/* Letters that belong to one of the two languages only: Persian writes
 * U+06CC yeh and U+06A9 keheh where Arabic writes U+064A and U+0643. */
static void
assert_script (const char *language, const char *text)
{
  const char *foreign = NULL;
  if (strcmp (language, "ar") == 0)
    foreign = "\u06cc\u06a9\u067e\u0686\u0698\u06af";
  else if (strcmp (language, "fa") == 0)
    foreign = "\u064a\u0643\u0649";
  for (const char *p = text; foreign != NULL && *p != '\0'; p = g_utf8_next_char (p))
    if (g_utf8_strchr (foreign, -1, g_utf8_get_char (p)) != NULL)
      g_error ("%s template has U+%04X, a letter of another language", language,
               (guint) g_utf8_get_char (p));
}

static void
test_shipped_templates (void)
{
  const char *dir = g_getenv ("TM_TEMPLATE_DIR");
  if (dir == NULL)
    {
      g_test_skip ("TM_TEMPLATE_DIR is not set");
      return;
    }
  g_autoptr (GError) error = NULL;
  TmTemplateSet *set = tm_template_set_load (dir, &error);
  g_assert_no_error (error);

  g_autoptr (GHashTable) values = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  const char *const *names = tm_template_placeholders ();
  for (gsize i = 0; names[i] != NULL; i++)
    g_hash_table_insert (values, (gpointer) names[i], g_strdup_printf ("<%s>", names[i]));

  /* What each text must tell the customer. */
  struct { const char *name; const char *needs[8]; } shipped[] = {
    { "ack", { "ticket.id", "ticket.tag", "customer.name", "response.hours", "response.due",
               "queue.name", NULL } },
    { "after-hours", { "ticket.id", "ticket.tag", "customer.name", "hours.open",
                       "hours.timezone", "hours.next_open", "queue.name", NULL } },
  };
  const char *languages[] = { "en", "ar", "fa" };
  for (gsize n = 0; n < G_N_ELEMENTS (shipped); n++)
    {
      const char *const *have = tm_template_set_languages (set, shipped[n].name);
      for (gsize l = 0; l < G_N_ELEMENTS (languages); l++)
        {
          g_assert_true (g_strv_contains (have, languages[l]));
          const TmTemplate *template_ = tm_template_set_lookup (set, languages[l],
                                                                shipped[n].name);
          g_assert_nonnull (template_);
          g_autofree char *subject = NULL;
          g_autofree char *body = NULL;
          tm_template_render (template_, values, &subject, &body);
          g_assert_null (strstr (subject, "{{"));
          g_assert_null (strstr (body, "{{"));
          assert_no_control_characters (subject);
          /* Replies thread by the tag in the subject. */
          g_assert_nonnull (strstr (subject, "<ticket.tag>"));
          for (gsize k = 0; shipped[n].needs[k] != NULL; k++)
            {
              g_autofree char *marker = g_strdup_printf ("<%s>", shipped[n].needs[k]);
              if (strstr (body, marker) == NULL)
                g_error ("%s: the body does not say %s", tm_template_path (template_),
                         shipped[n].needs[k]);
            }
          assert_script (languages[l], body);

          /* Saved as the header says: LF line ends, no BOM. */
          g_autofree char *raw = NULL;
          g_assert_true (g_file_get_contents (tm_template_path (template_), &raw, NULL, NULL));
          g_assert_null (strchr (raw, '\r'));
          g_assert_false (g_str_has_prefix (raw, "\xEF\xBB\xBF"));
          g_assert_true (g_str_has_suffix (raw, "\n"));
        }
    }
  tm_template_set_free (&set);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/template/placeholders/list", test_placeholders_list);
  g_test_add_func ("/template/render/every-placeholder", test_render_every_placeholder);
  g_test_add_func ("/template/render/simple", test_render_simple);
  g_test_add_func ("/template/render/without-values", test_render_without_values);
  g_test_add_func ("/template/render/template-text-kept", test_render_text_kept);
  g_test_add_func ("/template/render/one-pass", test_render_one_pass);
  g_test_add_func ("/template/render/control-characters", test_render_control_characters);
  g_test_add_func ("/template/render/invalid-utf8", test_render_invalid_utf8);
  g_test_add_func ("/template/render/cut-long-values", test_render_cut_long_values);
  g_test_add_func ("/template/render/cut-per-value", test_render_cut_per_value);
  g_test_add_func ("/template/render/threads", test_render_from_threads);
  g_test_add_func ("/template/load/header-name-any-case", test_header_name_any_case);
  g_test_add_func ("/template/load/crlf", test_crlf_file);
  g_test_add_func ("/template/load/byte-order-mark", test_byte_order_mark);
  g_test_add_func ("/template/load/empty-directory", test_empty_directory);
  g_test_add_func ("/template/load/languages-and-ignored-files",
                   test_languages_and_ignored_files);
  g_test_add_func ("/template/load/missing-directory", test_missing_directory);
  g_test_add_func ("/template/load/unreadable-file", test_unreadable_file);
  g_test_add_func ("/template/load/unreadable-permissions", test_unreadable_permissions);
  for (gsize i = 0; i < G_N_ELEMENTS (broken_cases); i++)
    {
      g_autofree char *test_path = g_strdup_printf ("/template/broken/%s", broken_cases[i].name);
      g_strdelimit (test_path + strlen ("/template/broken/"), " ,", '-');
      g_test_add_data_func (test_path, &broken_cases[i], test_broken);
    }
  g_test_add_func ("/template/shipped", test_shipped_templates);
  return g_test_run ();
}
