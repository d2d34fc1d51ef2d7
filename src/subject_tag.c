/* subject_tag.c - find, count and place "[PREFIX#ID]" in a subject.
 *
 * A hand-written scanner rather than a regular expression: the prefix comes
 * from the configuration (letters, digits, '-', '_', '.', checked there) and
 * the scan is one linear pass, cheap enough for every mail. Subjects are
 * UTF-8; the scanner only looks at ASCII bytes, so multi-byte characters pass
 * through untouched.
 */
#include "subject_tag.h"

#include <string.h>

typedef struct {
  gsize start;         /* offset of '[' */
  gsize end;           /* offset just past ']' */
  gint64 id;           /* 0 when the number does not fit */
} TagSpan;

static gsize
skip_blanks (const char *text, gsize at)
{
  while (text[at] == ' ' || text[at] == '\t')
    at++;
  return at;
}

/* Tries to read a tag of PREFIX starting at the '[' at OFFSET. */
static gboolean
tag_at (const char *subject, gsize offset, const char *prefix, gsize prefix_length,
        TagSpan *span)
{
  gsize at = skip_blanks (subject, offset + 1);
  if (g_ascii_strncasecmp (subject + at, prefix, prefix_length) != 0)
    return FALSE;
  at = skip_blanks (subject, at + prefix_length);
  if (subject[at] != '#')
    return FALSE;
  at = skip_blanks (subject, at + 1);
  if (!g_ascii_isdigit (subject[at]))
    return FALSE;
  gint64 id = 0;
  gboolean fits = TRUE;
  while (g_ascii_isdigit (subject[at]))
    {
      int digit = subject[at] - '0';
      if (id > (G_MAXINT64 - digit) / 10)
        fits = FALSE;
      else
        id = id * 10 + digit;
      at++;
    }
  at = skip_blanks (subject, at);
  if (subject[at] != ']')
    return FALSE;
  span->start = offset;
  span->end = at + 1;
  span->id = fits ? id : 0;
  return TRUE;
}

/* Every tag of PREFIX in SUBJECT, in order; returns how many were stored
 * (at most max_spans) and sets *total to how many there are. */
static guint
find_tags (const char *subject, const char *prefix, TagSpan *spans,
           guint max_spans, guint *total)
{
  gsize prefix_length = strlen (prefix);
  guint found = 0, count = 0;
  for (const char *bracket = strchr (subject, '['); bracket != NULL;
       bracket = strchr (bracket + 1, '['))
    {
      TagSpan span;
      if (!tag_at (subject, (gsize) (bracket - subject), prefix, prefix_length, &span))
        continue;
      if (found < max_spans)
        spans[found++] = span;
      count++;
      bracket = subject + span.end - 1;
    }
  if (total != NULL)
    *total = count;
  return found;
}

gint64
tm_subject_tag_find (const char *subject, const char *prefix)
{
  g_return_val_if_fail (subject != NULL && prefix != NULL && *prefix != '\0', 0);
  TagSpan span;
  if (find_tags (subject, prefix, &span, 1, NULL) == 0)
    return 0;
  return span.id;
}

gboolean
tm_subject_tag_is_exactly (const char *subject, const char *prefix, gint64 id)
{
  g_return_val_if_fail (subject != NULL && prefix != NULL && *prefix != '\0', FALSE);
  TagSpan span;
  guint total = 0;
  find_tags (subject, prefix, &span, 1, &total);
  return total == 1 && span.id == id;
}

char *
tm_subject_tag_apply (const char *subject, const char *prefix, gint64 id)
{
  g_return_val_if_fail (subject != NULL && prefix != NULL && *prefix != '\0', NULL);
  gsize prefix_length = strlen (prefix);
  GString *rest = g_string_sized_new (strlen (subject));
  gsize copied = 0;

  for (const char *bracket = strchr (subject, '['); bracket != NULL;
       bracket = strchr (bracket + 1, '['))
    {
      TagSpan span;
      if (!tag_at (subject, (gsize) (bracket - subject), prefix, prefix_length, &span))
        continue;
      g_string_append_len (rest, subject + copied, (gssize) (span.start - copied));
      copied = skip_blanks (subject, span.end);
      /* Keep one blank between the words on either side of the cut. */
      if (rest->len > 0 && rest->str[rest->len - 1] != ' ' && subject[copied] != '\0'
          && copied > span.end)
        g_string_append_c (rest, ' ');
      bracket = subject + span.end - 1;
    }
  g_string_append (rest, subject + copied);

  /* Tidy the white space the cuts left behind. */
  char *tidy = g_strstrip (rest->str);
  GString *result = g_string_new (NULL);
  g_string_append_printf (result, "[%s#%" G_GINT64_FORMAT "]", prefix, id);
  if (*tidy != '\0')
    {
      g_string_append_c (result, ' ');
      g_string_append (result, tidy);
    }
  g_string_free (rest, TRUE);
  return g_string_free (result, FALSE);
}
