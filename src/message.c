/* message.c - what ticket-milter needs to know about one mail, parsed with GMime.
 *
 * tm_message_parse (raw, length, options) always returns a TmMessage (see
 * message.h); every problem with the input becomes a short English
 * sentence in msg->warnings (deduplicated, at most MAX_WARNINGS of them).
 *
 * How the pieces are found:
 *  - headers: our own scan of the top-level header block, not GMime's list,
 *    because GMime stops a value at a NUL byte and we promise the bytes as
 *    sent (made valid UTF-8 by tm_charset_to_utf8, with the fallbacks, so a
 *    raw 8-bit header is decoded once, here). The block ends at the first
 *    empty line; lines that are neither "name: value" nor a continuation are
 *    skipped, as GMime does. Values are unfolded (line breaks dropped, the
 *    folding white space kept) and trimmed at both ends, so CRLF and LF
 *    copies of a mail give the same values. Subject, Date, In-Reply-To, References and
 *    Content-Language are read from these values; encoded words in the
 *    Subject are decoded with g_mime_utils_header_decode_text.
 *  - addresses: From, Reply-To, To and Cc as parsed by GMime; groups are
 *    flattened; addresses are lower-cased.
 *  - body_text: the first text/plain leaf that is not an attachment; else
 *    the first such text/html leaf through tm_html_to_text; else a text/plain
 *    or text/html leaf that has a file name but is not marked
 *    "Content-Disposition: attachment" (some clients name their body part).
 *    Parts inside an attached message/rfc822 never become the body. Its
 *    line ends are LF, whatever the mail used.
 *  - attachments: every leaf with Content-Disposition attachment, or a file
 *    name, or a type other than text/..., in MIME order. Sizes are counted by
 *    decoding into a GMimeStreamNull, so an attachment is never held in
 *    memory. A message/rfc822 part is listed as one attachment of type
 *    "message/rfc822", named by its file name parameter, else by its
 *    decoded Subject, else "message.eml"; its size is the embedded message
 *    as GMime writes it out. Its own attachments are listed after it.
 *    At most MAX_ATTACHMENTS are listed; more give one warning.
 *  - Nesting deeper than MAX_MIME_DEPTH (multiparts and embedded messages
 *    together) is not walked: one warning, the rest ignored. GMime itself
 *    stops parsing at 1024 levels, which bounds its recursion.
 *  - content_hash: SHA-256 of "name:value\n" for each top-level header
 *    except trace headers an MTA adds on a retry (Received, Return-Path,
 *    Delivered-To, X-Original-To, Authentication-Results, ARC-*) and the
 *    desk's own X-Ticket-* headers, then "\n", then the body bytes with
 *    CRLF turned into LF. Header values are the unfolded ones, so CRLF and
 *    LF copies of one mail hash alike.
 *
 * Memory: GMime parses straight from the caller's buffer (a GByteArray
 * that borrows it; GMime only reads), and GMime keeps part contents as
 * windows on that stream. Only the chosen body is decoded into memory.
 * The buffer must not change during the call; nothing in the result
 * points into it.
 *
 * Threads: tm_message_library_init() runs g_mime_init() once (g_once).
 * After that each parse has its own parser, stream and parser options, so
 * parses may run concurrently.
 */
#include "message.h"
#include "charset.h"
#include "html_text.h"
#include "normalize.h"

#include <string.h>
#include <gmime/gmime.h>

/* Multiparts and embedded messages walked inside each other. */
#define MAX_MIME_DEPTH 64
/* Attachments listed per message; a mail with more is hostile or broken,
 * and the store should not get a row for each. */
#define MAX_ATTACHMENTS 500
/* Distinct warnings kept per message; the rest are counted. */
#define MAX_WARNINGS 32
/* Longest piece of hostile text quoted in a warning. */
#define WARNING_QUOTE_MAX 60
/* How far into an HTML body to look for <meta charset>. */
#define HTML_META_SCAN 2048

static const char *const default_fallback_charsets[] = { "UTF-8", "windows-1256", NULL };

typedef struct {
  TmMessage *msg;
  GMimeParserOptions *options;
  const char *const *fallbacks;
  gboolean header_block_complete;  /* an empty line ended the headers */
  gboolean depth_warned;
  gboolean attachments_warned;
  GMimePart *plain_part;           /* body candidates, in order of preference */
  GMimePart *html_part;
  GMimePart *named_text_part;
} ParseContext;

/* --- small helpers ------------------------------------------------------- */

static gpointer
library_init_once (gpointer unused)
{
  g_mime_init ();
  return NULL;
}

void
tm_message_library_init (void)
{
  static GOnce once = G_ONCE_INIT;
  g_once (&once, library_init_once, NULL);
}

/* Hostile text made safe to quote in a warning: printable ASCII, short. */
static char *
quotable (const char *text)
{
  GString *out = g_string_new (NULL);
  gsize i;
  for (i = 0; text[i] != '\0' && out->len < WARNING_QUOTE_MAX; i++)
    g_string_append_c (out, g_ascii_isprint (text[i]) && text[i] != '"' ? text[i] : '?');
  if (text[i] != '\0')
    g_string_append (out, "...");
  return g_string_free (out, FALSE);
}

static void
add_warning (ParseContext *ctx, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
add_warning (ParseContext *ctx, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_ptr_array_add (ctx->msg->warnings, g_strdup_vprintf (format, args));
  va_end (args);
}

/* Valid UTF-8 without NUL from a C string GMime handed us. */
static char *
utf8_copy (const char *text)
{
  if (text == NULL)
    return NULL;
  if (g_utf8_validate (text, -1, NULL))
    return g_strdup (text);
  return g_utf8_make_valid (text, -1);
}

/* A lower-cased, valid address, or NULL when empty. */
static char *
normalised_address (const char *address)
{
  if (address == NULL)
    return NULL;
  g_autofree char *valid = utf8_copy (address);
  g_strstrip (valid);
  if (*valid == '\0')
    return NULL;
  /* Longer than an SMTP path may be (RFC 5321 4.5.3.1.3), or with a control
   * or line separator inside a quoted local part ("a\r\nBcc: x"@y, U+0085,
   * U+2028): no address anyone can write to. Kept, it would reach the
   * ticket, the X-Ticket-Customer header (a line no folding can shorten, or
   * a line break) and the log. */
  if (strlen (valid) > 254)
    return NULL;
  for (const char *c = valid; *c != '\0'; c = g_utf8_next_char (c))
    {
      gunichar u = g_utf8_get_char (c);
      if (tm_unichar_breaks_line (u))
        return NULL;
    }
  return g_utf8_strdown (valid, -1);
}

/* The text of the first header named name, or NULL. */
static const char *
header_value (const TmMessage *msg, const char *name)
{
  return tm_message_header (msg, name);
}

/* --- GMime's warnings ------------------------------------------------------ */

static void
on_parser_warning (gint64 offset, GMimeParserWarning code, const gchar *item, gpointer user_data)
{
  ParseContext *ctx = user_data;
  g_autofree char *shown = quotable (item != NULL ? item : "");

  switch (code)
    {
    case GMIME_WARN_DUPLICATED_HEADER:
      add_warning (ctx, "duplicate \"%s\" header", shown);
      break;
    case GMIME_WARN_DUPLICATED_PARAMETER:
      add_warning (ctx, "duplicate MIME parameter \"%s\"", shown);
      break;
    case GMIME_WARN_UNENCODED_8BIT_HEADER:
      add_warning (ctx, "header \"%s\" has raw 8-bit bytes", shown);
      break;
    case GMIME_WARN_INVALID_CONTENT_TYPE:
      add_warning (ctx, "invalid Content-Type \"%s\"; treated as application/octet-stream", shown);
      break;
    case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
      add_warning (ctx, "malformed RFC 2047 encoded word in a header");
      break;
    case GMIME_WARN_INVALID_PARAMETER:
      add_warning (ctx, "invalid MIME parameter \"%s\"", shown);
      break;
    case GMIME_WARN_MALFORMED_MULTIPART:
      add_warning (ctx, "multipart without any parts");
      break;
    case GMIME_WARN_TRUNCATED_MESSAGE:
      /* A header block cut short has its own warning. */
      if (ctx->header_block_complete)
        add_warning (ctx, "message is truncated: a MIME part or closing boundary is missing");
      break;
    case GMIME_WARN_MALFORMED_MESSAGE:
      add_warning (ctx, "malformed message");
      break;
    case GMIME_WARN_INVALID_ADDRESS_LIST:
      add_warning (ctx, "invalid address list \"%s\"", shown);
      break;
    case GMIME_CRIT_INVALID_HEADER_NAME:
      add_warning (ctx, "invalid header line skipped");
      break;
    case GMIME_CRIT_CONFLICTING_HEADER:
      add_warning (ctx, "conflicting \"%s\" headers", shown);
      break;
    case GMIME_CRIT_CONFLICTING_PARAMETER:
      add_warning (ctx, "conflicting MIME parameter \"%s\"", shown);
      break;
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
      add_warning (ctx, "multipart without a boundary parameter");
      break;
    case GMIME_CRIT_NESTING_OVERFLOW:
      add_warning (ctx, "MIME nesting too deep; deeper parts ignored");
      break;
    case GMIME_WARN_PART_WITHOUT_CONTENT:
      add_warning (ctx, "MIME part without content");
      break;
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
      add_warning (ctx, "MIME part without headers or content");
      break;
    default:
      add_warning (ctx, "MIME parser problem %d", (int) code);
      break;
    }
}

/* --- the header block ----------------------------------------------------- */

/* Is line[0..length) "name:" with a legal field name (white space before
 * the colon is tolerated, as in RFC 822)? Returns the name length or 0. */
static gsize
header_name_length (const char *line, gsize length, gsize *colon)
{
  const char *c = memchr (line, ':', length);
  if (c == NULL || c == line)
    return 0;
  gsize name_end = (gsize) (c - line);
  while (name_end > 0 && (line[name_end - 1] == ' ' || line[name_end - 1] == '\t'))
    name_end--;
  if (name_end == 0)
    return 0;
  for (gsize i = 0; i < name_end; i++)
    if ((guchar) line[i] < 0x21 || (guchar) line[i] > 0x7e)
      return 0;
  *colon = (gsize) (c - line);
  return name_end;
}

static void
tm_header_free (gpointer data)
{
  TmHeader *header = data;
  g_free (header->name);
  g_free (header->value);
  g_free (header);
}

static void
finish_header (ParseContext *ctx, char *name, GString *raw_value)
{
  gsize length = raw_value->len;
  while (length > 0 && (raw_value->str[length - 1] == ' ' || raw_value->str[length - 1] == '\t'
                        || raw_value->str[length - 1] == '\r'))
    length--;
  /* A value that starts on a continuation line ("Subject:\n  text") has the
   * folding white space in front; message.h promises it removed. */
  gsize start = 0;
  while (start < length && (raw_value->str[start] == ' ' || raw_value->str[start] == '\t'))
    start++;
  TmHeader *header = g_new (TmHeader, 1);
  header->name = name;
  header->value = tm_charset_to_utf8 (raw_value->str + start, length - start, NULL,
                                      ctx->fallbacks, ctx->msg->warnings);
  g_ptr_array_add (ctx->msg->headers, header);
}

/* Fills msg->headers; returns the offset where the body starts. */
static gsize
scan_header_block (ParseContext *ctx, const char *raw, gsize length)
{
  g_autoptr (GString) value = g_string_new (NULL);
  char *name = NULL;          /* header being collected */
  gsize pos = 0;

  while (pos < length)
    {
      const char *nl = memchr (raw + pos, '\n', length - pos);
      gsize line_end = nl != NULL ? (gsize) (nl - raw) : length;
      gsize next = nl != NULL ? line_end + 1 : length;
      gsize content_end = line_end;
      if (content_end > pos && raw[content_end - 1] == '\r')
        content_end--;
      const char *line = raw + pos;
      gsize line_length = content_end - pos;

      if (line_length == 0)
        {
          if (name != NULL)
            finish_header (ctx, g_steal_pointer (&name), value);
          ctx->header_block_complete = nl != NULL;
          return next;
        }
      if (line[0] == ' ' || line[0] == '\t')
        {
          /* Unfolding keeps the white space and drops the line break. */
          if (name != NULL)
            g_string_append_len (value, line, (gssize) line_length);
        }
      else
        {
          gsize colon = 0;
          gsize name_length = header_name_length (line, line_length, &colon);
          if (name != NULL)
            finish_header (ctx, g_steal_pointer (&name), value);
          if (name_length > 0)
            {
              name = g_strndup (line, name_length);
              gsize v = colon + 1;
              while (v < line_length && (line[v] == ' ' || line[v] == '\t'))
                v++;
              g_string_truncate (value, 0);
              g_string_append_len (value, line + v, (gssize) (line_length - v));
            }
        }
      pos = next;
    }

  if (name != NULL)
    finish_header (ctx, g_steal_pointer (&name), value);
  ctx->header_block_complete = FALSE;
  return length;
}

/* --- content hash ---------------------------------------------------------- */

static gboolean
is_retry_variant_header (const char *name)
{
  static const char *const trace_headers[] = {
    "Received", "Return-Path", "Delivered-To", "X-Original-To", "Authentication-Results", NULL
  };
  for (guint i = 0; trace_headers[i] != NULL; i++)
    if (g_ascii_strcasecmp (name, trace_headers[i]) == 0)
      return TRUE;
  return g_ascii_strncasecmp (name, "ARC-", 4) == 0
         || g_ascii_strncasecmp (name, "X-Ticket-", 9) == 0;
}

static char *
compute_content_hash (const TmMessage *msg, const char *body, gsize body_length)
{
  g_autoptr (GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);

  for (guint i = 0; i < msg->headers->len; i++)
    {
      const TmHeader *header = g_ptr_array_index (msg->headers, i);
      if (is_retry_variant_header (header->name))
        continue;
      g_checksum_update (checksum, (const guchar *) header->name, -1);
      g_checksum_update (checksum, (const guchar *) ":", 1);
      g_checksum_update (checksum, (const guchar *) header->value, -1);
      g_checksum_update (checksum, (const guchar *) "\n", 1);
    }
  g_checksum_update (checksum, (const guchar *) "\n", 1);

  /* The body with each CRLF hashed as LF. */
  const char *p = body;
  const char *end = body + body_length;
  while (p < end)
    {
      const char *cr = memchr (p, '\r', (gsize) (end - p));
      if (cr == NULL || cr + 1 >= end)
        {
          g_checksum_update (checksum, (const guchar *) p, end - p);
          break;
        }
      if (cr[1] == '\n')
        {
          g_checksum_update (checksum, (const guchar *) p, cr - p);
          p = cr + 1;
        }
      else
        {
          g_checksum_update (checksum, (const guchar *) p, cr + 1 - p);
          p = cr + 1;
        }
    }
  return g_strdup (g_checksum_get_string (checksum));
}

/* --- addresses and ids ----------------------------------------------------- */

/* Appends the lower-cased mailboxes of list (groups flattened) to out;
 * depth bounds groups inside groups, which GMime may build from junk. */
static void
collect_addresses (InternetAddressList *list, GPtrArray *out, GPtrArray *names, guint depth)
{
  if (list == NULL || depth > 4)
    return;
  int count = internet_address_list_length (list);
  for (int i = 0; i < count; i++)
    {
      InternetAddress *address = internet_address_list_get_address (list, i);
      if (INTERNET_ADDRESS_IS_GROUP (address))
        collect_addresses (internet_address_group_get_members (INTERNET_ADDRESS_GROUP (address)),
                           out, names, depth + 1);
      else if (INTERNET_ADDRESS_IS_MAILBOX (address))
        {
          char *normal = normalised_address (
            internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (address)));
          if (normal == NULL)
            continue;
          g_ptr_array_add (out, normal);
          if (names != NULL)
            {
              const char *name = internet_address_get_name (address);
              char *valid = name != NULL && *name != '\0' ? utf8_copy (name) : NULL;
              if (valid != NULL)
                g_strstrip (valid);
              if (valid != NULL && *valid == '\0')
                g_clear_pointer (&valid, g_free);
              g_ptr_array_add (names, valid);
            }
        }
    }
}

static char **
address_vector (InternetAddressList *list)
{
  GPtrArray *out = g_ptr_array_new ();
  collect_addresses (list, out, NULL, 0);
  g_ptr_array_add (out, NULL);
  return (char **) g_ptr_array_free (out, FALSE);
}

/* The first mailbox of list: address and, when wanted, display name. */
static void
first_mailbox (InternetAddressList *list, char **address, char **name)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  collect_addresses (list, out, names, 0);
  if (out->len == 0)
    return;
  *address = g_strdup (g_ptr_array_index (out, 0));
  if (name != NULL)
    *name = g_strdup (g_ptr_array_index (names, 0));
}

/* The msg-ids of value, oldest first, without angle brackets. */
static GPtrArray *
parse_message_ids (ParseContext *ctx, const char *value)
{
  GPtrArray *ids = g_ptr_array_new_with_free_func (g_free);
  if (value == NULL)
    return ids;
  GMimeReferences *refs = g_mime_references_parse (ctx->options, value);
  if (refs != NULL)
    {
      int count = g_mime_references_length (refs);
      for (int i = 0; i < count; i++)
        {
          const char *id = g_mime_references_get_message_id (refs, i);
          if (id != NULL && *id != '\0')
            g_ptr_array_add (ids, utf8_copy (id));
        }
      g_mime_references_free (refs);
    }
  return ids;
}

/* A single msg-id, tolerating one without brackets. */
static char *
decode_message_id (const char *value)
{
  if (value == NULL)
    return NULL;
  g_autofree char *decoded = g_mime_utils_decode_message_id (value);
  if (decoded == NULL)
    return NULL;
  g_strstrip (decoded);
  if (*decoded == '\0')
    return NULL;
  return utf8_copy (decoded);
}

static void
read_envelope_headers (ParseContext *ctx, GMimeMessage *message)
{
  TmMessage *msg = ctx->msg;
  const char *value;

  value = header_value (msg, "Subject");
  if (value != NULL)
    {
      g_autofree char *decoded = g_mime_utils_header_decode_text (ctx->options, value);
      msg->subject = utf8_copy (decoded != NULL ? decoded : value);
      g_strstrip (msg->subject);
    }
  else
    msg->subject = g_strdup ("");

  if (message != NULL)
    {
      first_mailbox (g_mime_message_get_from (message), &msg->from_address, &msg->from_name);
      first_mailbox (g_mime_message_get_reply_to (message), &msg->reply_to_address, NULL);
      msg->to = address_vector (g_mime_message_get_to (message));
      msg->cc = address_vector (g_mime_message_get_cc (message));
    }
  else
    {
      msg->to = g_new0 (char *, 1);
      msg->cc = g_new0 (char *, 1);
    }
  if (header_value (msg, "From") == NULL)
    add_warning (ctx, "no From header");
  else if (msg->from_address == NULL)
    add_warning (ctx, "From header has no usable address");

  value = header_value (msg, "Message-ID");
  if (value == NULL)
    add_warning (ctx, "no Message-ID header");
  else
    {
      g_autoptr (GPtrArray) ids = parse_message_ids (ctx, value);
      msg->message_id = ids->len > 0 ? g_strdup (g_ptr_array_index (ids, 0))
                                     : decode_message_id (value);
      if (msg->message_id == NULL)
        add_warning (ctx, "empty Message-ID header");
    }

  value = header_value (msg, "In-Reply-To");
  if (value != NULL)
    {
      g_autoptr (GPtrArray) ids = parse_message_ids (ctx, value);
      msg->in_reply_to = ids->len > 0 ? g_strdup (g_ptr_array_index (ids, 0))
                                      : decode_message_id (value);
    }

  g_autoptr (GPtrArray) references = parse_message_ids (ctx, header_value (msg, "References"));
  g_ptr_array_set_free_func (references, NULL);
  g_ptr_array_add (references, NULL);
  msg->references = (char **) g_ptr_array_free (g_steal_pointer (&references), FALSE);

  value = header_value (msg, "Date");
  if (value == NULL)
    add_warning (ctx, "no Date header");
  else
    {
      msg->date = g_strdup (value);
      GDateTime *when = g_mime_utils_header_decode_date (value);
      if (when != NULL)
        {
          msg->date_unix = g_date_time_to_unix (when);
          g_date_time_unref (when);
        }
      else
        {
          g_autofree char *shown = quotable (value);
          add_warning (ctx, "Date header \"%s\" is not a valid date", shown);
        }
    }

  value = header_value (msg, "Content-Language");
  if (value != NULL)
    msg->content_language = g_strdup (value);
}

/* --- MIME walk ------------------------------------------------------------- */

static void
tm_attachment_free (gpointer data)
{
  TmAttachment *attachment = data;
  g_free (attachment->filename);
  g_free (attachment->content_type);
  g_free (attachment);
}

static char *
mime_type_of (GMimeObject *object)
{
  GMimeContentType *type = g_mime_object_get_content_type (object);
  const char *media = type != NULL ? g_mime_content_type_get_media_type (type) : NULL;
  const char *sub = type != NULL ? g_mime_content_type_get_media_subtype (type) : NULL;
  g_autofree char *joined = g_strdup_printf ("%s/%s", media != NULL && *media ? media : "application",
                                             sub != NULL && *sub ? sub : "octet-stream");
  g_autofree char *valid = utf8_copy (joined);
  return g_ascii_strdown (valid, -1);
}

/* Is there room for one more attachment? Warns once when not. */
static gboolean
attachment_room (ParseContext *ctx)
{
  if (ctx->msg->attachments->len < MAX_ATTACHMENTS)
    return TRUE;
  if (!ctx->attachments_warned)
    add_warning (ctx, "more than %d attachments; the rest are not listed", MAX_ATTACHMENTS);
  ctx->attachments_warned = TRUE;
  return FALSE;
}

static void
add_attachment (ParseContext *ctx, const char *filename, char *content_type, gsize size)
{
  TmAttachment *attachment = g_new (TmAttachment, 1);
  attachment->filename = filename != NULL ? utf8_copy (filename) : g_strdup ("");
  g_strstrip (attachment->filename);
  attachment->content_type = content_type;
  attachment->size = size;
  g_ptr_array_add (ctx->msg->attachments, attachment);
}

/* Bytes written into a counting stream; nothing is kept. */
static gsize
decoded_size_of_part (GMimePart *part)
{
  GMimeDataWrapper *content = g_mime_part_get_content (part);
  if (content == NULL)
    return 0;
  GMimeStream *counter = g_mime_stream_null_new ();
  g_mime_data_wrapper_write_to_stream (content, counter);
  gsize size = GMIME_STREAM_NULL (counter)->written;
  g_object_unref (counter);
  return size;
}

static gsize
written_size_of_object (GMimeObject *object)
{
  GMimeStream *counter = g_mime_stream_null_new ();
  g_mime_object_write_to_stream (object, NULL, counter);
  gsize size = GMIME_STREAM_NULL (counter)->written;
  g_object_unref (counter);
  return size;
}

static void walk_mime (ParseContext *ctx, GMimeObject *object, guint depth, gboolean embedded);

static void
walk_message_part (ParseContext *ctx, GMimeMessagePart *part, guint depth)
{
  GMimeObject *object = GMIME_OBJECT (part);
  GMimeMessage *inner = g_mime_message_part_get_message (part);
  const char *filename = g_mime_object_get_content_disposition_parameter (object, "filename");
  g_autofree char *subject = NULL;

  if (filename == NULL)
    filename = g_mime_object_get_content_type_parameter (object, "name");
  if (filename == NULL && inner != NULL && g_mime_message_get_subject (inner) != NULL)
    {
      subject = utf8_copy (g_mime_message_get_subject (inner));
      g_strstrip (subject);
      if (*subject != '\0')
        filename = subject;
    }
  if (attachment_room (ctx))
    add_attachment (ctx, filename != NULL ? filename : "message.eml", mime_type_of (object),
                    inner != NULL ? written_size_of_object (GMIME_OBJECT (inner)) : 0);

  if (inner != NULL && g_mime_message_get_mime_part (inner) != NULL)
    walk_mime (ctx, g_mime_message_get_mime_part (inner), depth + 1, TRUE);
}

static void
walk_leaf (ParseContext *ctx, GMimePart *part, gboolean embedded)
{
  GMimeObject *object = GMIME_OBJECT (part);
  GMimeContentType *type = g_mime_object_get_content_type (object);
  const char *disposition = g_mime_object_get_disposition (object);
  const char *filename = g_mime_part_get_filename (part);
  gboolean is_text = type != NULL && g_mime_content_type_is_type (type, "text", "*");
  gboolean is_plain = type != NULL && g_mime_content_type_is_type (type, "text", "plain");
  gboolean is_html = type != NULL && g_mime_content_type_is_type (type, "text", "html");
  gboolean marked_attachment = disposition != NULL
                               && g_ascii_strcasecmp (disposition, "attachment") == 0;
  gboolean has_name = filename != NULL && *filename != '\0';

  if (!embedded && (is_plain || is_html) && !marked_attachment)
    {
      if (!has_name && is_plain && ctx->plain_part == NULL)
        ctx->plain_part = part;
      else if (!has_name && is_html && ctx->html_part == NULL)
        ctx->html_part = part;
      else if (has_name && ctx->named_text_part == NULL)
        ctx->named_text_part = part;
    }

  if ((marked_attachment || has_name || !is_text) && attachment_room (ctx))
    add_attachment (ctx, filename, mime_type_of (object), decoded_size_of_part (part));
}

static void
walk_mime (ParseContext *ctx, GMimeObject *object, guint depth, gboolean embedded)
{
  if (depth > MAX_MIME_DEPTH)
    {
      if (!ctx->depth_warned)
        add_warning (ctx, "MIME structure nested deeper than %d levels; deeper parts ignored",
                     MAX_MIME_DEPTH);
      ctx->depth_warned = TRUE;
      return;
    }
  if (GMIME_IS_MULTIPART (object))
    {
      GMimeMultipart *multipart = GMIME_MULTIPART (object);
      int count = g_mime_multipart_get_count (multipart);
      for (int i = 0; i < count; i++)
        walk_mime (ctx, g_mime_multipart_get_part (multipart, i), depth + 1, embedded);
    }
  else if (GMIME_IS_MESSAGE_PART (object))
    walk_message_part (ctx, GMIME_MESSAGE_PART (object), depth);
  else if (GMIME_IS_PART (object))
    walk_leaf (ctx, GMIME_PART (object), embedded);
}

/* A charset named in an HTML <meta>, for HTML parts that declare none. */
static char *
html_meta_charset (const guint8 *html, gsize length)
{
  if (html == NULL || length == 0)
    return NULL;
  gsize scan = MIN (length, HTML_META_SCAN);
  const char *p = g_strstr_len ((const char *) html, (gssize) scan, "charset=");
  if (p == NULL)
    return NULL;
  p += strlen ("charset=");
  const char *end = (const char *) html + scan;
  while (p < end && (*p == '"' || *p == '\''))
    p++;
  const char *start = p;
  while (p < end && p - start < 40 && (g_ascii_isalnum (*p) || *p == '-' || *p == '_'))
    p++;
  return p > start ? g_strndup (start, (gsize) (p - start)) : NULL;
}

/* CRLF to LF in place, so that body text looks alike whatever the
 * transfer encoding and the sender's line ends. */
static void
crlf_to_lf (char *text)
{
  char *out = text;
  for (const char *in = text; *in != '\0'; in++)
    if (!(in[0] == '\r' && in[1] == '\n'))
      *out++ = *in;
  *out = '\0';
}

static char *
decode_body_part (ParseContext *ctx, GMimePart *part)
{
  GMimeDataWrapper *content = g_mime_part_get_content (part);
  if (content == NULL)
    return g_strdup ("");

  GMimeStream *memory = g_mime_stream_mem_new ();
  g_mime_data_wrapper_write_to_stream (content, memory);
  GByteArray *bytes = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (memory));

  GMimeContentType *type = g_mime_object_get_content_type (GMIME_OBJECT (part));
  gboolean is_html = type != NULL && g_mime_content_type_is_type (type, "text", "html");
  const char *declared = g_mime_object_get_content_type_parameter (GMIME_OBJECT (part), "charset");
  g_autofree char *meta_charset = NULL;
  if (declared == NULL && is_html)
    declared = meta_charset = html_meta_charset (bytes->data, bytes->len);

  char *text = tm_charset_to_utf8 ((const char *) bytes->data, bytes->len, declared,
                                   ctx->fallbacks, ctx->msg->warnings);
  g_object_unref (memory);
  crlf_to_lf (text);
  if (is_html)
    {
      char *readable = tm_html_to_text (text, strlen (text));
      g_free (text);
      text = readable;
    }
  return text;
}

/* --- warnings bookkeeping ---------------------------------------------------- */

/* Drops repeated sentences (a thousand broken parts say the same thing)
 * and keeps at most MAX_WARNINGS. */
static void
settle_warnings (TmMessage *msg)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  GPtrArray *kept = g_ptr_array_new_with_free_func (g_free);
  guint dropped = 0;

  for (guint i = 0; i < msg->warnings->len; i++)
    {
      char *warning = g_ptr_array_index (msg->warnings, i);
      if (!g_hash_table_add (seen, warning))
        continue;
      if (kept->len < MAX_WARNINGS)
        g_ptr_array_add (kept, g_strdup (warning));
      else
        dropped++;
    }
  if (dropped > 0)
    g_ptr_array_add (kept, g_strdup_printf ("%u more warnings not shown", dropped));
  g_ptr_array_unref (msg->warnings);
  msg->warnings = kept;
}

/* --- entry points ------------------------------------------------------------ */

/* A GMime stream over the caller's bytes without copying them: the
 * GByteArray borrows the buffer, the stream does not own the array, and
 * release_borrowed_stream() gives the buffer back untouched. GMime's parser
 * and data wrappers only read from it. */
static GMimeStream *
borrowed_stream_new (const char *raw, gsize length, GByteArray **array)
{
  *array = g_byte_array_new_take ((guint8 *) raw, length);
  GMimeStream *stream = g_mime_stream_mem_new_with_byte_array (*array);
  g_mime_stream_mem_set_owner (GMIME_STREAM_MEM (stream), FALSE);
  return stream;
}

static void
release_borrowed_array (GByteArray *array)
{
  /* FALSE: return the segment (the caller's buffer) instead of freeing it. */
  guint8 *borrowed = g_byte_array_free (array, FALSE);
  (void) borrowed;
}

TmMessage *
tm_message_parse (const char *raw, gsize length, const TmParseOptions *options)
{
  g_return_val_if_fail (raw != NULL || length == 0, NULL);

  tm_message_library_init ();

  TmMessage *msg = g_new0 (TmMessage, 1);
  msg->attachments = g_ptr_array_new_with_free_func (tm_attachment_free);
  msg->headers = g_ptr_array_new_with_free_func (tm_header_free);
  msg->warnings = g_ptr_array_new_with_free_func (g_free);
  msg->truncated = options != NULL && options->truncated;
  msg->size = length;
  if (msg->truncated && options->original_size > length)
    msg->size = options->original_size;

  ParseContext ctx = { 0 };
  ctx.msg = msg;
  ctx.fallbacks = options != NULL && options->fallback_charsets != NULL
                  ? options->fallback_charsets : default_fallback_charsets;

  if (raw == NULL)
    raw = "";
  /* GByteArray lengths are guint; a bigger mail is parsed up to that. */
  gsize parse_length = MIN (length, (gsize) G_MAXUINT);
  if (parse_length < length)
    add_warning (&ctx, "message larger than %u bytes; only the start was parsed", G_MAXUINT);
  if (msg->truncated)
    add_warning (&ctx, "message truncated: only the first %" G_GSIZE_FORMAT " of %"
                 G_GSIZE_FORMAT " bytes were parsed", length, msg->size);

  ctx.options = g_mime_parser_options_new ();
  g_mime_parser_options_set_fallback_charsets (ctx.options, (const char **) ctx.fallbacks);
  g_mime_parser_options_set_rfc2047_compliance_mode (ctx.options, GMIME_RFC_COMPLIANCE_LOOSE);
  g_mime_parser_options_set_address_compliance_mode (ctx.options, GMIME_RFC_COMPLIANCE_LOOSE);
  g_mime_parser_options_set_parameter_compliance_mode (ctx.options, GMIME_RFC_COMPLIANCE_LOOSE);

  gsize body_offset = scan_header_block (&ctx, raw, parse_length);
  if (parse_length == 0)
    add_warning (&ctx, "message is empty");
  else if (!ctx.header_block_complete)
    add_warning (&ctx, "no empty line after the headers; the message has no body");

  /* Warnings from here on come from GMime as well. */
  g_mime_parser_options_set_warning_callback (ctx.options, on_parser_warning, &ctx);

  GMimeMessage *message = NULL;
  GByteArray *borrowed = NULL;
  GMimeStream *stream = NULL;
  GMimeParser *parser = NULL;
  if (parse_length > 0)
    {
      stream = borrowed_stream_new (raw, parse_length, &borrowed);
      parser = g_mime_parser_new_with_stream (stream);
      message = g_mime_parser_construct_message (parser, ctx.options);
    }

  read_envelope_headers (&ctx, message);

  if (message != NULL && g_mime_message_get_mime_part (message) != NULL)
    walk_mime (&ctx, g_mime_message_get_mime_part (message), 0, FALSE);
  GMimePart *body_part = ctx.plain_part != NULL ? ctx.plain_part
                         : ctx.html_part != NULL ? ctx.html_part : ctx.named_text_part;
  msg->body_text = body_part != NULL ? decode_body_part (&ctx, body_part) : g_strdup ("");

  if (!(options != NULL && options->hash_only_without_message_id && msg->message_id != NULL
        && *msg->message_id != '\0'))
    msg->content_hash = compute_content_hash (msg, raw + body_offset, parse_length - body_offset);

  if (message != NULL)
    g_object_unref (message);
  if (parser != NULL)
    g_object_unref (parser);
  if (stream != NULL)
    g_object_unref (stream);
  if (borrowed != NULL)
    release_borrowed_array (borrowed);
  g_mime_parser_options_free (ctx.options);

  settle_warnings (msg);
  return msg;
}

void
tm_message_free (TmMessage **message)
{
  g_return_if_fail (message != NULL);
  TmMessage *msg = *message;
  if (msg == NULL)
    return;
  *message = NULL;

  g_free (msg->subject);
  g_free (msg->from_address);
  g_free (msg->from_name);
  g_free (msg->reply_to_address);
  g_strfreev (msg->to);
  g_strfreev (msg->cc);
  g_free (msg->message_id);
  g_free (msg->in_reply_to);
  g_strfreev (msg->references);
  g_free (msg->date);
  g_free (msg->content_language);
  g_free (msg->body_text);
  g_ptr_array_unref (msg->attachments);
  g_ptr_array_unref (msg->headers);
  g_ptr_array_unref (msg->warnings);
  g_free (msg->content_hash);
  g_free (msg);
}

const char *
tm_message_header (const TmMessage *message, const char *name)
{
  g_return_val_if_fail (message != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);

  for (guint i = 0; i < message->headers->len; i++)
    {
      const TmHeader *header = g_ptr_array_index (message->headers, i);
      if (g_ascii_strcasecmp (header->name, name) == 0)
        return header->value;
    }
  return NULL;
}

guint
tm_message_header_count (const TmMessage *message, const char *name)
{
  g_return_val_if_fail (message != NULL, 0);
  g_return_val_if_fail (name != NULL, 0);

  guint count = 0;
  for (guint i = 0; i < message->headers->len; i++)
    {
      const TmHeader *header = g_ptr_array_index (message->headers, i);
      if (g_ascii_strcasecmp (header->name, name) == 0)
        count++;
    }
  return count;
}

char *
tm_header_first_word (const char *value)
{
  g_return_val_if_fail (value != NULL, NULL);
  while (g_ascii_isspace (*value))
    value++;
  gsize length = strcspn (value, " \t\r\n,;(");
  return g_ascii_strdown (value, (gssize) length);
}
