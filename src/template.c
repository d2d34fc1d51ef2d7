/* template.c - load, check and render the customer-facing texts in
 * templates/LANG/NAME.txt (see template.h for the file format).
 *
 * Synopsis:
 *   set = tm_template_set_load (dir, &error);    once, at start
 *   t = tm_template_set_lookup (set, "ar", "ack");
 *   tm_template_render (t, values, &subject, &body);   per mail, any thread
 *   tm_template_set_free (&set);
 *
 * Loading does all the checking, so that a broken template stops the daemon
 * at start instead of failing a customer's acknowledgement later. Each file
 * is read whole, then:
 *   - a NUL byte or invalid UTF-8 is an error (a UTF-8 BOM at the start is
 *     skipped; CR before LF is dropped, so files saved with CRLF load);
 *   - the header block is "Name: value" lines up to the first empty line;
 *     the only header is Subject (any case), its value trimmed of blanks;
 *     folded lines, a second Subject, another header, a header block that
 *     never ends and a file without Subject are errors;
 *   - the Subject may hold no control character at all (not even TAB), the
 *     body none but TAB and LF: the template text is copied into the mail
 *     as it is, so it must already be clean (this goes beyond the error
 *     list in template.h, for the same reason);
 *   - "{{ name }}" must close on the same line, NAME must be one of
 *     tm_template_placeholders() (lower-case letters, '.', '_').
 * Every syntax error reads "FILE:LINE: what is wrong"; unreadable
 * directories and files give TM_TEMPLATE_ERROR_READ with the path and the
 * system's reason.
 *
 * A loaded template is a list of pieces: literal text (pointing into the
 * template's own copy of its subject or body) or a placeholder index.
 * Rendering walks the pieces once, so text inside a value is never looked
 * at for placeholders again, and each value goes through append_value(),
 * which enforces the rules of template.h: controls (C0, DEL, C1, U+2028,
 * U+2029) become spaces, invalid UTF-8 becomes U+FFFD one byte at a time,
 * and a value longer than the limit (200 characters in the subject, 1000
 * in the body) is cut to limit - 3 characters followed by "...", so the
 * result is at most the limit. Work per value is bounded by the limit, not
 * by the value's length.
 *
 * Directory entries: LANG directories are named with lower-case ASCII
 * letters, digits and '-' (language tags are compared lower-cased
 * elsewhere); NAME files with ASCII letters, digits and '-', ending in
 * ".txt". Everything else (README, .git, editor backups) is ignored.
 * Entries are read in sorted order so that the first error reported is the
 * same on every run.
 *
 * Ownership: the set owns every template, its path, language and name; the
 * language lists from tm_template_set_languages() point at those strings.
 * After loading nothing is modified, so lookups and rendering need no lock.
 */
#include "template.h"
#include "normalize.h"

#include <stdarg.h>
#include <string.h>

#define SUBJECT_VALUE_LIMIT 200
#define BODY_VALUE_LIMIT 1000
#define CUT_MARK "..."

G_DEFINE_QUARK (tm-template-error-quark, tm_template_error)

/* Order matters only for tm_template_placeholders(); pieces store indexes. */
static const char *const placeholder_names[] = {
  "ticket.id",
  "ticket.tag",
  "ticket.subject",
  "customer.name",
  "customer.address",
  "queue.name",
  "queue.address",
  "response.hours",
  "response.due",
  "hours.timezone",
  "hours.open",
  "hours.next_open",
  NULL,
};

typedef struct {
  const char *literal;   /* into the template's subject or body; NULL for a placeholder */
  gsize literal_length;
  guint placeholder;     /* index into placeholder_names when literal is NULL */
} Piece;

struct TmTemplate {
  char *path;
  char *language;
  char *name;
  char *subject_text;    /* the Subject value as written, trimmed */
  char *body_text;       /* LF line ends */
  GArray *subject_pieces;  /* of Piece */
  GArray *body_pieces;     /* of Piece */
};

struct TmTemplateSet {
  GHashTable *by_language;        /* language -> GHashTable (name -> TmTemplate *, owned) */
  GHashTable *languages_by_name;  /* name -> GPtrArray of language, sorted, NULL-terminated */
};

const char *const *
tm_template_placeholders (void)
{
  return placeholder_names;
}

static void
template_free (TmTemplate *template_)
{
  if (template_ == NULL)
    return;
  g_free (template_->path);
  g_free (template_->language);
  g_free (template_->name);
  g_free (template_->subject_text);
  g_free (template_->body_text);
  if (template_->subject_pieces != NULL)
    g_array_unref (template_->subject_pieces);
  if (template_->body_pieces != NULL)
    g_array_unref (template_->body_pieces);
  g_free (template_);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TmTemplate, template_free)

static gboolean
is_blank (char c)
{
  return c == ' ' || c == '\t';
}

/* 1 + the number of LF in TEXT before OFFSET. */
static guint
line_at (const char *text, gsize offset)
{
  guint line = 1;
  for (gsize i = 0; i < offset; i++)
    if (text[i] == '\n')
      line++;
  return line;
}

static gboolean
syntax_error (GError **error, const char *path, guint line, const char *format, ...)
  G_GNUC_PRINTF (4, 5);

static gboolean
syntax_error (GError **error, const char *path, guint line, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, TM_TEMPLATE_ERROR, TM_TEMPLATE_ERROR_SYNTAX, "%s:%u: %s", path, line,
               what);
  return FALSE;
}

/* Checks the characters of one line of template text (valid UTF-8). */
static gboolean
check_line_characters (const char *line, gsize length, gboolean allow_tab, const char *path,
                       guint line_number, const char *where, GError **error)
{
  for (const char *p = line; p < line + length; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (tm_unichar_breaks_line (c) && !(allow_tab && c == '\t'))
        return syntax_error (error, path, line_number, "control character U+%04X in the %s",
                             (guint) c, where);
    }
  return TRUE;
}

static gboolean
is_placeholder_name (const char *name, gsize length)
{
  if (length == 0)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '.' || name[i] == '_'))
      return FALSE;
  return TRUE;
}

static gboolean
find_placeholder (const char *name, gsize length, guint *index)
{
  for (guint i = 0; placeholder_names[i] != NULL; i++)
    if (strlen (placeholder_names[i]) == length
        && memcmp (placeholder_names[i], name, length) == 0)
      {
        *index = i;
        return TRUE;
      }
  return FALSE;
}

static void
add_literal (GArray *pieces, const char *text, gsize length)
{
  if (length == 0)
    return;
  Piece piece = { .literal = text, .literal_length = length };
  g_array_append_val (pieces, piece);
}

/* Splits TEXT (which the template keeps alive) into pieces. FIRST_LINE is
 * the file line TEXT starts on, for messages. */
static GArray *
compile (const char *text, guint first_line, const char *path, GError **error)
{
  g_autoptr (GArray) pieces = g_array_new (FALSE, FALSE, sizeof (Piece));
  guint line = first_line;
  gsize literal_start = 0;
  gsize at = 0;
  while (text[at] != '\0')
    {
      if (text[at] == '\n')
        {
          line++;
          at++;
          continue;
        }
      if (text[at] != '{' || text[at + 1] != '{')
        {
          at++;
          continue;
        }
      /* A placeholder never spans lines: a "{{" left open is reported on
         its own line rather than swallowing the text after it. */
      gsize close = at + 2;
      while (text[close] != '\0' && text[close] != '\n'
             && !(text[close] == '}' && text[close + 1] == '}'))
        close++;
      if (text[close] != '}')
        {
          syntax_error (error, path, line, "unterminated \"{{\" (no \"}}\" on the same line)");
          return NULL;
        }
      gsize name_start = at + 2;
      gsize name_end = close;
      while (name_start < name_end && is_blank (text[name_start]))
        name_start++;
      while (name_end > name_start && is_blank (text[name_end - 1]))
        name_end--;
      const char *name = text + name_start;
      int name_length = (int) (name_end - name_start);
      guint index;
      if (!is_placeholder_name (name, name_end - name_start))
        {
          syntax_error (error, path, line,
                        "malformed placeholder \"%.*s\" (names are lower-case letters, '.' "
                        "and '_', such as {{ticket.id}})",
                        (int) (close + 2 - at), text + at);
          return NULL;
        }
      if (!find_placeholder (name, name_end - name_start, &index))
        {
          syntax_error (error, path, line, "unknown placeholder {{%.*s}}", name_length, name);
          return NULL;
        }
      add_literal (pieces, text + literal_start, at - literal_start);
      Piece piece = { .literal = NULL, .placeholder = index };
      g_array_append_val (pieces, piece);
      at = close + 2;
      literal_start = at;
    }
  add_literal (pieces, text + literal_start, at - literal_start);
  return g_steal_pointer (&pieces);
}

/* Parses CONTENTS (LENGTH bytes, as read from PATH) into TEMPLATE_. */
static gboolean
parse (TmTemplate *template_, const char *contents, gsize length, GError **error)
{
  const char *path = template_->path;

  const char *nul = memchr (contents, '\0', length);
  if (nul != NULL)
    return syntax_error (error, path, line_at (contents, (gsize) (nul - contents)),
                         "NUL byte in a template");
  const char *end_of_valid;
  if (!g_utf8_validate_len (contents, length, &end_of_valid))
    return syntax_error (error, path, line_at (contents, (gsize) (end_of_valid - contents)),
                         "invalid UTF-8 (template files must be saved as UTF-8)");

  gsize at = 0;
  if (length >= 3 && memcmp (contents, "\xEF\xBB\xBF", 3) == 0)
    at = 3;

  guint line_number = 0;
  guint subject_line = 0;
  gboolean headers_ended = FALSE;
  while (at < length && !headers_ended)
    {
      line_number++;
      const char *line = contents + at;
      const char *newline = memchr (line, '\n', length - at);
      gsize line_length = newline != NULL ? (gsize) (newline - line) : length - at;
      at += line_length + (newline != NULL ? 1 : 0);
      if (line_length > 0 && line[line_length - 1] == '\r')
        line_length--;

      if (line_length == 0)
        {
          headers_ended = TRUE;
          break;
        }
      if (is_blank (line[0]))
        return syntax_error (error, path, line_number,
                             "header lines may not be folded (continued on the next line)");
      const char *colon = memchr (line, ':', line_length);
      gsize name_length = colon != NULL ? (gsize) (colon - line) : 0;
      gboolean name_ok = name_length > 0;
      for (gsize i = 0; i < name_length && name_ok; i++)
        name_ok = line[i] > ' ' && line[i] < 0x7F;
      if (!name_ok)
        return syntax_error (error, path, line_number,
                             "expected a header such as \"Subject: ...\" or the blank line "
                             "that separates the headers from the body");
      if (name_length != strlen ("Subject")
          || g_ascii_strncasecmp (line, "Subject", name_length) != 0)
        return syntax_error (error, path, line_number,
                             "unknown header \"%.*s\" (only Subject is allowed)",
                             (int) name_length, line);
      if (subject_line != 0)
        return syntax_error (error, path, line_number,
                             "a second Subject line (the first is on line %u)", subject_line);
      subject_line = line_number;

      const char *value = colon + 1;
      const char *value_end = line + line_length;
      while (value < value_end && is_blank (*value))
        value++;
      while (value_end > value && is_blank (value_end[-1]))
        value_end--;
      if (value == value_end)
        return syntax_error (error, path, line_number, "empty Subject");
      if (!check_line_characters (value, (gsize) (value_end - value), FALSE, path, line_number,
                                  "Subject", error))
        return FALSE;
      template_->subject_text = g_strndup (value, (gsize) (value_end - value));
    }
  if (!headers_ended)
    return syntax_error (error, path, MAX (line_number, 1),
                         "the headers are not followed by a blank line and a body");
  if (subject_line == 0)
    return syntax_error (error, path, line_number, "missing \"Subject:\" line before the body");

  guint body_first_line = line_number + 1;
  g_autoptr (GString) body = g_string_sized_new (length - at);
  while (at < length)
    {
      line_number++;
      const char *line = contents + at;
      const char *newline = memchr (line, '\n', length - at);
      gsize line_length = newline != NULL ? (gsize) (newline - line) : length - at;
      at += line_length + (newline != NULL ? 1 : 0);
      if (line_length > 0 && line[line_length - 1] == '\r')
        line_length--;
      if (!check_line_characters (line, line_length, TRUE, path, line_number, "body", error))
        return FALSE;
      g_string_append_len (body, line, (gssize) line_length);
      if (newline != NULL)
        g_string_append_c (body, '\n');
    }
  template_->body_text = g_string_free (g_steal_pointer (&body), FALSE);

  template_->subject_pieces = compile (template_->subject_text, subject_line, path, error);
  if (template_->subject_pieces == NULL)
    return FALSE;
  template_->body_pieces = compile (template_->body_text, body_first_line, path, error);
  return template_->body_pieces != NULL;
}

static TmTemplate *
template_load (const char *path, const char *language, const char *name, GError **error)
{
  g_autoptr (TmTemplate) template_ = g_new0 (TmTemplate, 1);
  template_->path = g_strdup (path);
  template_->language = g_strdup (language);
  template_->name = g_strdup (name);

  g_autofree char *contents = NULL;
  gsize length = 0;
  g_autoptr (GError) read_error = NULL;
  if (!g_file_get_contents (path, &contents, &length, &read_error))
    {
      g_set_error (error, TM_TEMPLATE_ERROR, TM_TEMPLATE_ERROR_READ,
                   "cannot read template: %s", read_error->message);
      return NULL;
    }
  if (!parse (template_, contents, length, error))
    return NULL;
  return g_steal_pointer (&template_);
}

static gboolean
is_language_name (const char *name)
{
  if (*name == '\0')
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!((*p >= 'a' && *p <= 'z') || g_ascii_isdigit (*p) || *p == '-'))
      return FALSE;
  return TRUE;
}

/* NAME when FILE_NAME is "NAME.txt" with a valid NAME, else NULL. New string. */
static char *
template_name_of (const char *file_name)
{
  if (!g_str_has_suffix (file_name, ".txt"))
    return NULL;
  gsize length = strlen (file_name) - strlen (".txt");
  if (length == 0)
    return NULL;
  for (gsize i = 0; i < length; i++)
    if (!(g_ascii_isalnum (file_name[i]) || file_name[i] == '-'))
      return NULL;
  return g_strndup (file_name, length);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* The entry names of directory PATH, sorted; NULL with a READ error
 * (GLib's message names the path; WHAT says what it was for). */
static GPtrArray *
sorted_entries (const char *path, const char *what, GError **error)
{
  g_autoptr (GError) open_error = NULL;
  g_autoptr (GDir) dir = g_dir_open (path, 0, &open_error);
  if (dir == NULL)
    {
      g_set_error (error, TM_TEMPLATE_ERROR, TM_TEMPLATE_ERROR_READ, "cannot open the %s: %s",
                   what, open_error->message);
      return NULL;
    }
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  for (const char *name; (name = g_dir_read_name (dir)) != NULL;)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  return names;
}

static void
language_list_free (gpointer list)
{
  g_ptr_array_unref (list);
}

static gboolean
load_language (TmTemplateSet *set, const char *dir, const char *language, GError **error)
{
  g_autofree char *language_dir = g_build_filename (dir, language, NULL);
  g_autoptr (GPtrArray) entries = sorted_entries (language_dir, "language directory", error);
  if (entries == NULL)
    return FALSE;
  for (guint i = 0; i < entries->len; i++)
    {
      const char *file_name = entries->pdata[i];
      g_autofree char *name = template_name_of (file_name);
      if (name == NULL)
        continue;
      g_autofree char *path = g_build_filename (language_dir, file_name, NULL);
      TmTemplate *template_ = template_load (path, language, name, error);
      if (template_ == NULL)
        return FALSE;

      GHashTable *by_name = g_hash_table_lookup (set->by_language, language);
      if (by_name == NULL)
        {
          by_name = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                           (GDestroyNotify) template_free);
          g_hash_table_insert (set->by_language, g_strdup (language), by_name);
        }
      g_hash_table_insert (by_name, template_->name, template_);

      GPtrArray *languages = g_hash_table_lookup (set->languages_by_name, template_->name);
      if (languages == NULL)
        {
          languages = g_ptr_array_new ();
          g_hash_table_insert (set->languages_by_name, g_strdup (template_->name), languages);
        }
      /* Languages arrive in sorted order; the NULL terminator is added
         once every language is in. */
      g_ptr_array_add (languages, template_->language);
    }
  return TRUE;
}

TmTemplateSet *
tm_template_set_load (const char *dir, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  g_autoptr (GPtrArray) entries = sorted_entries (dir, "template directory", error);
  if (entries == NULL)
    return NULL;

  TmTemplateSet *set = g_new0 (TmTemplateSet, 1);
  set->by_language = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify) g_hash_table_unref);
  set->languages_by_name = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                  language_list_free);
  for (guint i = 0; i < entries->len; i++)
    {
      const char *language = entries->pdata[i];
      if (!is_language_name (language))
        continue;
      g_autofree char *language_dir = g_build_filename (dir, language, NULL);
      if (!g_file_test (language_dir, G_FILE_TEST_IS_DIR))
        continue;
      if (!load_language (set, dir, language, error))
        {
          tm_template_set_free (&set);
          return NULL;
        }
    }

  GHashTableIter iter;
  gpointer list;
  g_hash_table_iter_init (&iter, set->languages_by_name);
  while (g_hash_table_iter_next (&iter, NULL, &list))
    g_ptr_array_add (list, NULL);
  return set;
}

void
tm_template_set_free (TmTemplateSet **set)
{
  g_return_if_fail (set != NULL);
  if (*set == NULL)
    return;
  g_hash_table_unref ((*set)->languages_by_name);
  g_hash_table_unref ((*set)->by_language);
  g_free (*set);
  *set = NULL;
}

const TmTemplate *
tm_template_set_lookup (const TmTemplateSet *set, const char *language, const char *name)
{
  g_return_val_if_fail (set != NULL, NULL);
  g_return_val_if_fail (language != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  GHashTable *by_name = g_hash_table_lookup (set->by_language, language);
  return by_name != NULL ? g_hash_table_lookup (by_name, name) : NULL;
}

const char *const *
tm_template_set_languages (const TmTemplateSet *set, const char *name)
{
  static const char *const none[] = { NULL };
  g_return_val_if_fail (set != NULL, none);
  g_return_val_if_fail (name != NULL, none);
  GPtrArray *languages = g_hash_table_lookup (set->languages_by_name, name);
  return languages != NULL ? (const char *const *) languages->pdata : none;
}

const char *
tm_template_path (const TmTemplate *template_)
{
  g_return_val_if_fail (template_ != NULL, NULL);
  return template_->path;
}

/* Appends VALUE as data: see the header comment for the rules. Looks at
 * no more than LIMIT + 1 characters of VALUE. */
static void
append_value (GString *out, const char *value, guint limit)
{
  g_assert (limit > strlen (CUT_MARK));
  gsize cut_at = out->len;   /* where "..." goes if the value is too long */
  guint characters = 0;
  const char *p = value;
  while (*p != '\0')
    {
      if (characters == limit)
        {
          g_string_truncate (out, cut_at);
          g_string_append (out, CUT_MARK);
          return;
        }
      if (characters == limit - strlen (CUT_MARK))
        cut_at = out->len;
      gunichar c = g_utf8_get_char_validated (p, -1);
      if (c == (gunichar) -1 || c == (gunichar) -2)
        {
          /* One U+FFFD per bad byte: resynchronises at the next lead byte. */
          g_string_append_unichar (out, 0xFFFD);
          p++;
        }
      else if (tm_unichar_breaks_line (c))
        {
          g_string_append_c (out, ' ');
          p = g_utf8_next_char (p);
        }
      else
        {
          const char *next = g_utf8_next_char (p);
          g_string_append_len (out, p, next - p);
          p = next;
        }
      characters++;
    }
}

static char *
render_pieces (const GArray *pieces, GHashTable *values, guint limit, gsize size_hint)
{
  GString *out = g_string_sized_new (size_hint);
  for (guint i = 0; i < pieces->len; i++)
    {
      const Piece *piece = &g_array_index (pieces, Piece, i);
      if (piece->literal != NULL)
        {
          g_string_append_len (out, piece->literal, (gssize) piece->literal_length);
          continue;
        }
      const char *value = values != NULL
        ? g_hash_table_lookup (values, placeholder_names[piece->placeholder])
        : NULL;
      if (value != NULL)
        append_value (out, value, limit);
    }
  return g_string_free (out, FALSE);
}

void
tm_template_render (const TmTemplate *template_, GHashTable *values, char **subject,
                    char **body)
{
  g_return_if_fail (template_ != NULL);
  g_return_if_fail (subject != NULL);
  g_return_if_fail (body != NULL);
  *subject = render_pieces (template_->subject_pieces, values, SUBJECT_VALUE_LIMIT,
                            strlen (template_->subject_text) + 64);
  *body = render_pieces (template_->body_pieces, values, BODY_VALUE_LIMIT,
                         strlen (template_->body_text) + 256);
}
