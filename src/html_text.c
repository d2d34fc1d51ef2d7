/* html_text.c - readable plain text from an HTML body.
 *
 * A single forward pass over the input with a hand-written tag scanner; no
 * DOM, no recursion, nothing read past the end of the buffer. Every loop
 * advances the read position, so the work is linear in the input even for
 * hostile markup (unclosed comments, unclosed quotes, "<" without ">").
 *
 * What it does:
 *  - drops the content of <script>, <style> and <head> (a <head> that is
 *    never closed ends at <body>, which is how broken mail usually looks);
 *  - p, div, br, tr, h1-h6, blockquote, ul, ol, table, hr and similar
 *    block elements start a new line (headings, paragraphs and block
 *    quotes a new paragraph); <li> starts a line with "- "; td/th are
 *    separated by a space;
 *  - decodes character references: the common named ones (see
 *    named_entities[]), &#NNN; and &#xHH;. Out-of-range, surrogate or zero
 *    code points become U+FFFD; an unknown name is kept as written;
 *  - collapses runs of white space to one space, keeps at most one empty
 *    line in a row, and trims the result;
 *  - keeps link targets: <a href="URL">text</a> becomes "text <URL>" unless
 *    the text already says the URL (or is empty, or the link is "#..." or
 *    "javascript:").
 * Limits: comments, CDATA and processing instructions are dropped; there
 * is no notion of <pre> (its white space is collapsed too), and character
 * references inside <script>/<style> are irrelevant since they are dropped.
 * Input must be UTF-8 (tags are ASCII, so cutting at tag boundaries keeps
 * UTF-8 valid); the caller owns the result.
 */
#include "html_text.h"

#include <string.h>

typedef struct {
  GString *out;
  gboolean pending_space;   /* white space seen since the last text */
  guint pending_newlines;   /* line breaks owed before the next text */
  char *link_href;          /* href of the open <a>, or NULL */
  gboolean link_text_pending; /* the open <a> has produced no text yet */
  gsize link_text_start;    /* where the open <a>'s text starts in out */
} HtmlWriter;

typedef struct {
  const char *name;
  gunichar code_point;
} NamedEntity;

/* The character references mail actually uses; &shy; maps to nothing. */
static const NamedEntity named_entities[] = {
  { "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
  { "nbsp", ' ' }, { "ensp", ' ' }, { "emsp", ' ' }, { "thinsp", ' ' },
  { "shy", 0 }, { "zwnj", 0x200c }, { "zwj", 0x200d }, { "lrm", 0x200e }, { "rlm", 0x200f },
  { "copy", 0xa9 }, { "reg", 0xae }, { "trade", 0x2122 }, { "hellip", 0x2026 },
  { "mdash", 0x2014 }, { "ndash", 0x2013 }, { "minus", 0x2212 },
  { "lsquo", 0x2018 }, { "rsquo", 0x2019 }, { "sbquo", 0x201a },
  { "ldquo", 0x201c }, { "rdquo", 0x201d }, { "bdquo", 0x201e },
  { "laquo", 0xab }, { "raquo", 0xbb }, { "lsaquo", 0x2039 }, { "rsaquo", 0x203a },
  { "bull", 0x2022 }, { "middot", 0xb7 }, { "dagger", 0x2020 }, { "Dagger", 0x2021 },
  { "euro", 0x20ac }, { "pound", 0xa3 }, { "yen", 0xa5 }, { "cent", 0xa2 }, { "curren", 0xa4 },
  { "sect", 0xa7 }, { "para", 0xb6 }, { "deg", 0xb0 }, { "plusmn", 0xb1 },
  { "times", 0xd7 }, { "divide", 0xf7 }, { "frac12", 0xbd }, { "frac14", 0xbc },
  { "frac34", 0xbe }, { "sup1", 0xb9 }, { "sup2", 0xb2 }, { "sup3", 0xb3 },
  { "micro", 0xb5 }, { "iexcl", 0xa1 }, { "iquest", 0xbf }, { "ordf", 0xaa }, { "ordm", 0xba },
  { "larr", 0x2190 }, { "rarr", 0x2192 }, { "uarr", 0x2191 }, { "darr", 0x2193 },
  { "check", 0x2713 }, { "hearts", 0x2665 }, { "star", 0x2606 },
  { "Agrave", 0xc0 }, { "Aacute", 0xc1 }, { "Acirc", 0xc2 }, { "Atilde", 0xc3 },
  { "Auml", 0xc4 }, { "Aring", 0xc5 }, { "AElig", 0xc6 }, { "Ccedil", 0xc7 },
  { "Egrave", 0xc8 }, { "Eacute", 0xc9 }, { "Ecirc", 0xca }, { "Euml", 0xcb },
  { "Igrave", 0xcc }, { "Iacute", 0xcd }, { "Icirc", 0xce }, { "Iuml", 0xcf },
  { "Ntilde", 0xd1 }, { "Ograve", 0xd2 }, { "Oacute", 0xd3 }, { "Ocirc", 0xd4 },
  { "Otilde", 0xd5 }, { "Ouml", 0xd6 }, { "Oslash", 0xd8 }, { "Ugrave", 0xd9 },
  { "Uacute", 0xda }, { "Ucirc", 0xdb }, { "Uuml", 0xdc }, { "Yacute", 0xdd },
  { "szlig", 0xdf }, { "agrave", 0xe0 }, { "aacute", 0xe1 }, { "acirc", 0xe2 },
  { "atilde", 0xe3 }, { "auml", 0xe4 }, { "aring", 0xe5 }, { "aelig", 0xe6 },
  { "ccedil", 0xe7 }, { "egrave", 0xe8 }, { "eacute", 0xe9 }, { "ecirc", 0xea },
  { "euml", 0xeb }, { "igrave", 0xec }, { "iacute", 0xed }, { "icirc", 0xee },
  { "iuml", 0xef }, { "ntilde", 0xf1 }, { "ograve", 0xf2 }, { "oacute", 0xf3 },
  { "ocirc", 0xf4 }, { "otilde", 0xf5 }, { "ouml", 0xf6 }, { "oslash", 0xf8 },
  { "ugrave", 0xf9 }, { "uacute", 0xfa }, { "ucirc", 0xfb }, { "uuml", 0xfc },
  { "yacute", 0xfd }, { "yuml", 0xff },
};

/* Longest name in named_entities[]; longer runs are not looked up. */
#define ENTITY_NAME_MAX 8
/* Tag names are compared only up to this length ("blockquote" is 10). */
#define TAG_NAME_MAX 16

static gboolean
is_html_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* --- output ------------------------------------------------------------- */

static void
writer_break (HtmlWriter *w, guint newlines)
{
  if (w->out->len == 0)
    return;                 /* leading breaks would be trimmed anyway */
  w->pending_newlines = MAX (w->pending_newlines, newlines);
  w->pending_space = FALSE;
}

static void
writer_space (HtmlWriter *w)
{
  w->pending_space = TRUE;
}

/* Settles owed breaks and spaces before text. */
static void
writer_flush_pending (HtmlWriter *w)
{
  if (w->pending_newlines > 0)
    {
      for (guint i = 0; i < w->pending_newlines; i++)
        g_string_append_c (w->out, '\n');
      w->pending_newlines = 0;
    }
  else if (w->pending_space && w->out->len > 0 && w->out->str[w->out->len - 1] != '\n')
    g_string_append_c (w->out, ' ');
  w->pending_space = FALSE;
}

static void
writer_text (HtmlWriter *w, const char *text, gsize length)
{
  if (length == 0)
    return;
  writer_flush_pending (w);
  if (w->link_text_pending)
    {
      w->link_text_start = w->out->len;
      w->link_text_pending = FALSE;
    }
  g_string_append_len (w->out, text, (gssize) length);
}

static void
writer_unichar (HtmlWriter *w, gunichar c)
{
  char utf8[6];
  if (c == 0)
    return;
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
    {
      writer_space (w);
      return;
    }
  writer_text (w, utf8, (gsize) g_unichar_to_utf8 (c, utf8));
}

/* --- character references ---------------------------------------------- */

/* Decodes the reference at html[*pos] == '&'. On success appends the
 * character to *c, advances *pos past it and returns TRUE; otherwise leaves
 * *pos alone (the caller then keeps '&' as text). */
static gboolean
decode_reference (const char *html, gsize length, gsize *pos, gunichar *c)
{
  gsize i = *pos + 1;

  if (i < length && html[i] == '#')
    {
      gboolean hex = FALSE;
      guint64 value = 0;
      gsize digits = 0;
      i++;
      if (i < length && (html[i] == 'x' || html[i] == 'X'))
        {
          hex = TRUE;
          i++;
        }
      while (i < length && (hex ? g_ascii_isxdigit (html[i]) : g_ascii_isdigit (html[i])))
        {
          /* Saturate instead of overflowing on "&#99999999999999999999;". */
          if (value <= 0x10ffff)
            value = value * (hex ? 16 : 10)
                    + (guint64) (hex ? g_ascii_xdigit_value (html[i]) : g_ascii_digit_value (html[i]));
          digits++;
          i++;
        }
      if (digits == 0)
        return FALSE;
      if (i < length && html[i] == ';')
        i++;
      if (value == 0 || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff))
        value = 0xfffd;
      *c = (gunichar) value;
      *pos = i;
      return TRUE;
    }

  gsize name_start = i;
  while (i < length && i - name_start <= ENTITY_NAME_MAX && g_ascii_isalnum (html[i]))
    i++;
  gsize name_length = i - name_start;
  if (name_length == 0 || name_length > ENTITY_NAME_MAX)
    return FALSE;
  for (gsize k = 0; k < G_N_ELEMENTS (named_entities); k++)
    {
      const char *name = named_entities[k].name;
      if (strlen (name) == name_length && memcmp (name, html + name_start, name_length) == 0)
        {
          if (i < length && html[i] == ';')
            i++;
          *c = named_entities[k].code_point;
          *pos = i;
          return TRUE;
        }
    }
  return FALSE;
}

/* Text with references decoded, for attribute values. */
static char *
decode_attribute (const char *value, gsize length)
{
  GString *out = g_string_sized_new (length);
  gsize i = 0;
  while (i < length)
    {
      gunichar c;
      if (value[i] == '&' && decode_reference (value, length, &i, &c))
        {
          if (c != 0)
            g_string_append_unichar (out, c);
          continue;
        }
      g_string_append_c (out, value[i]);
      i++;
    }
  return g_string_free (out, FALSE);
}

/* --- tags ---------------------------------------------------------------- */

typedef struct {
  char name[TAG_NAME_MAX + 1];  /* lower case, "" when not a plain element */
  gboolean closing;             /* </name> */
  char *href;                   /* decoded href attribute, for <a> */
} HtmlTag;

/* Finds the end of a tag starting at html[start] == '<'. Quotes are only
 * honoured at the start of an attribute value, as browsers do; an unclosed
 * quote runs to the end of the input. Returns the index just past '>', or
 * length. Fills tag; href only for <a>, owned by the caller. */
static gsize
scan_tag (const char *html, gsize length, gsize start, HtmlTag *tag)
{
  gsize i = start + 1;
  gsize n = 0;

  tag->name[0] = '\0';
  tag->closing = FALSE;
  tag->href = NULL;

  if (i < length && html[i] == '/')
    {
      tag->closing = TRUE;
      i++;
    }
  while (i < length && (g_ascii_isalnum (html[i])))
    {
      if (n < TAG_NAME_MAX)
        tag->name[n++] = g_ascii_tolower (html[i]);
      i++;
    }
  tag->name[n] = '\0';

  /* Attributes. */
  while (i < length && html[i] != '>')
    {
      if (is_html_space (html[i]) || html[i] == '/')
        {
          i++;
          continue;
        }
      gsize attr_start = i;
      while (i < length && html[i] != '=' && html[i] != '>' && !is_html_space (html[i]))
        i++;
      gsize attr_length = i - attr_start;
      while (i < length && is_html_space (html[i]))
        i++;
      if (i >= length || html[i] != '=')
        continue;
      i++;
      while (i < length && is_html_space (html[i]))
        i++;
      gsize value_start, value_end;
      if (i < length && (html[i] == '"' || html[i] == '\''))
        {
          const char *close = memchr (html + i + 1, html[i], length - i - 1);
          value_start = i + 1;
          value_end = close != NULL ? (gsize) (close - html) : length;
          i = close != NULL ? value_end + 1 : length;
        }
      else
        {
          value_start = i;
          while (i < length && html[i] != '>' && !is_html_space (html[i]))
            i++;
          value_end = i;
        }
      if (strcmp (tag->name, "a") == 0 && !tag->closing && tag->href == NULL
          && attr_length == 4 && g_ascii_strncasecmp (html + attr_start, "href", 4) == 0)
        {
          char *href = decode_attribute (html + value_start, value_end - value_start);
          tag->href = g_strstrip (href);
        }
    }
  return i < length ? i + 1 : length;
}

static gboolean
name_is_one_of (const char *name, const char *const *names)
{
  for (guint i = 0; names[i] != NULL; i++)
    if (strcmp (name, names[i]) == 0)
      return TRUE;
  return FALSE;
}

/* Index of the first "</name" (any case) at or after from, or length. */
static gsize
find_closing_tag (const char *html, gsize length, gsize from, const char *name,
                  const char *or_open_name)
{
  gsize name_length = strlen (name);
  gsize other_length = or_open_name != NULL ? strlen (or_open_name) : 0;

  for (gsize i = from; i < length; i++)
    {
      const char *lt = memchr (html + i, '<', length - i);
      if (lt == NULL)
        return length;
      i = (gsize) (lt - html);
      if (i + 1 + name_length < length && html[i + 1] == '/'
          && g_ascii_strncasecmp (html + i + 2, name, name_length) == 0)
        return i;
      if (or_open_name != NULL && i + other_length < length
          && g_ascii_strncasecmp (html + i + 1, or_open_name, other_length) == 0)
        return i;
    }
  return length;
}

/* Does the link text already show where the link goes? */
static gboolean
link_text_says_href (const char *text, const char *href)
{
  if (g_str_has_prefix (href, "mailto:"))
    href += strlen ("mailto:");
  if (strstr (text, href) != NULL)
    return TRUE;
  /* "example.com/x" for "https://example.com/x". */
  const char *scheme_end = strstr (href, "://");
  if (scheme_end != NULL && strstr (text, scheme_end + 3) != NULL && strlen (scheme_end + 3) > 0)
    return TRUE;
  return FALSE;
}

static void
close_link (HtmlWriter *w)
{
  if (w->link_href == NULL)
    return;
  const char *href = w->link_href;
  gboolean has_text = !w->link_text_pending;
  if (*href != '\0' && *href != '#' && g_ascii_strncasecmp (href, "javascript:", 11) != 0
      && has_text && !link_text_says_href (w->out->str + w->link_text_start, href))
    {
      g_autofree char *shown = g_strdup_printf ("<%s>", href);
      writer_space (w);
      writer_text (w, shown, strlen (shown));
    }
  g_clear_pointer (&w->link_href, g_free);
  w->link_text_pending = FALSE;
}

static void
handle_tag (HtmlWriter *w, const HtmlTag *tag)
{
  static const char *const paragraph_tags[] = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "table",
    "hr", "dl", "pre", "section", "article", "header", "footer", "address", NULL
  };
  static const char *const line_tags[] = {
    "br", "div", "tr", "dt", "dd", "center", "form", "fieldset", "caption",
    "nav", "aside", "main", "figure", "figcaption", "tbody", "thead", "tfoot",
    "html", "body", "title", NULL
  };
  const char *name = tag->name;

  if (strcmp (name, "a") == 0)
    {
      if (tag->closing)
        close_link (w);
      else
        {
          close_link (w);
          if (tag->href != NULL)
            {
              w->link_href = g_strdup (tag->href);
              w->link_text_pending = TRUE;
            }
        }
    }
  else if (strcmp (name, "li") == 0)
    {
      writer_break (w, 1);
      if (!tag->closing)
        {
          writer_flush_pending (w);
          g_string_append (w->out, "- ");
        }
    }
  else if (name_is_one_of (name, paragraph_tags))
    writer_break (w, 2);
  else if (name_is_one_of (name, line_tags))
    writer_break (w, 1);
  else if (strcmp (name, "td") == 0 || strcmp (name, "th") == 0)
    writer_space (w);
}

char *
tm_html_to_text (const char *html, gsize length)
{
  g_return_val_if_fail (html != NULL || length == 0, NULL);

  HtmlWriter w = { g_string_sized_new (length / 2 + 16), FALSE, 0, NULL, FALSE, 0 };
  gsize i = 0;

  while (i < length)
    {
      char c = html[i];

      if (c == '<')
        {
          /* Comments run to "-->", or to the end when never closed. */
          if (i + 3 < length && memcmp (html + i, "<!--", 4) == 0)
            {
              const char *end = memmem (html + i + 4, length - i - 4, "-->", 3);
              i = end != NULL ? (gsize) (end - html) + 3 : length;
              continue;
            }
          if (i + 1 < length && (html[i + 1] == '!' || html[i + 1] == '?'))
            {
              const char *end = memchr (html + i, '>', length - i);
              i = end != NULL ? (gsize) (end - html) + 1 : length;
              continue;
            }
          if (i + 1 >= length || !(g_ascii_isalpha (html[i + 1]) || html[i + 1] == '/'))
            {
              writer_text (&w, "<", 1);     /* "a < b" is text */
              i++;
              continue;
            }

          HtmlTag tag;
          i = scan_tag (html, length, i, &tag);
          if (!tag.closing && (strcmp (tag.name, "script") == 0 || strcmp (tag.name, "style") == 0
                               || strcmp (tag.name, "head") == 0))
            {
              gboolean is_head = strcmp (tag.name, "head") == 0;
              gsize close = find_closing_tag (html, length, i, tag.name, is_head ? "body" : NULL);
              i = close;
              if (close < length && html[close + 1] == '/')
                {
                  HtmlTag closing;
                  i = scan_tag (html, length, close, &closing);
                  g_free (closing.href);
                }
            }
          else
            handle_tag (&w, &tag);
          g_free (tag.href);
          continue;
        }

      if (c == '&')
        {
          gunichar decoded;
          if (decode_reference (html, length, &i, &decoded))
            {
              writer_unichar (&w, decoded);
              continue;
            }
          writer_text (&w, "&", 1);
          i++;
          continue;
        }

      if (is_html_space (c))
        {
          writer_space (&w);
          i++;
          continue;
        }

      /* A run of plain text in one append. */
      gsize run_start = i;
      while (i < length && html[i] != '<' && html[i] != '&' && !is_html_space (html[i]))
        i++;
      writer_text (&w, html + run_start, i - run_start);
    }

  close_link (&w);

  /* Trim: trailing breaks and spaces were never written; a leading "- "
   * from <li> is content. Only trailing white space can remain. */
  while (w.out->len > 0 && is_html_space (w.out->str[w.out->len - 1]))
    g_string_truncate (w.out, w.out->len - 1);
  return g_string_free (w.out, FALSE);
}
