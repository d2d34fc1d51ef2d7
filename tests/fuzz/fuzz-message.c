/* fuzz-message.c - libFuzzer target: tm_message_parse() on arbitrary bytes.
 *
 * The input is a whole mail (the seed corpus is the files of tests/messages plus a
 * few hostile ones). Each input is parsed:
 *   1. as it is, with the default options (what `ticketctl simulate` does);
 *   2. with every bare LF turned into CRLF (what the milter sees of a mail
 *      that `ticketctl simulate` reads from a file): the content hash, the
 *      idempotency key of a mail without Message-ID, and every value read
 *      from the header block must be the same as in 1;
 *   3. with options chosen from the input's last byte: other fallback
 *      charsets (Arabic ones, an empty list, a bogus name with an iconv
 *      suffix), or cut short and flagged truncated as the milter does with
 *      a mail over max_message_size; for inputs of even length also with
 *      hash_only_without_message_id, as the daemon parses.
 * Every field of every result is walked and checked against the promises of
 * message.h: valid UTF-8 everywhere, lower-cased addresses, no empty ids,
 * header names that are field names, at most 33 warnings, a 64-digit hash.
 */
#include <string.h>

#include "message.h"
#include "fuzz-common.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_glib ();
  return 0;
}

static const char *const arabic_fallbacks[] = { "windows-1256", "ISO-8859-6", "UTF-8", NULL };
static const char *const no_fallbacks[] = { NULL };
static const char *const odd_fallbacks[] = { "utf-8//IGNORE", "no-such-charset", "ISO-8859-1",
                                             NULL };

static void
check_lower_address (const char *what, const char *address)
{
  fuzz_check_text (what, address);
  FUZZ_CHECK (*address != '\0', "%s is empty", what);
  g_autofree char *lower = g_utf8_strdown (address, -1);
  FUZZ_CHECK (strcmp (lower, address) == 0, "%s \"%s\" is not lower-cased", what, address);
}

static void
check_address_vector (const char *what, char **addresses)
{
  FUZZ_CHECK (addresses != NULL, "%s is NULL", what);
  for (char **a = addresses; *a != NULL; a++)
    check_lower_address (what, *a);
}

static void
check_header (const TmMessage *msg, const TmHeader *header)
{
  FUZZ_CHECK (header->name != NULL && *header->name != '\0', "empty header name");
  for (const char *c = header->name; *c != '\0'; c++)
    FUZZ_CHECK (*c >= 0x21 && *c <= 0x7e && *c != ':', "header name \"%s\" has byte 0x%02x",
                header->name, (guint8) *c);
  fuzz_check_text ("header value", header->value);
  FUZZ_CHECK (strchr (header->value, '\n') == NULL, "header %s value has a line feed",
              header->name);
  /* "unfolded, leading white space removed" (and trailing, message.c). */
  gsize length = strlen (header->value);
  FUZZ_CHECK (length == 0
              || (header->value[0] != ' ' && header->value[0] != '\t'
                  && header->value[length - 1] != ' ' && header->value[length - 1] != '\t'),
              "header %s value \"%s\" is not trimmed", header->name, header->value);
  /* The lookups find it (the first of its name, maybe another one). */
  FUZZ_CHECK (tm_message_header (msg, header->name) != NULL, "header %s not found by name",
              header->name);
  FUZZ_CHECK (tm_message_header_count (msg, header->name) >= 1, "header %s not counted",
              header->name);
  g_autofree char *word = tm_header_first_word (header->value);
  fuzz_check_text ("first word", word);
}

static void
check_message (const TmMessage *msg, gsize length, const TmParseOptions *options)
{
  FUZZ_CHECK (msg != NULL, "tm_message_parse returned NULL");
  fuzz_check_text ("subject", msg->subject);
  if (msg->from_address != NULL)
    check_lower_address ("from_address", msg->from_address);
  fuzz_check_optional_text ("from_name", msg->from_name);
  FUZZ_CHECK (msg->from_name == NULL || msg->from_address != NULL, "a name without an address");
  if (msg->reply_to_address != NULL)
    check_lower_address ("reply_to_address", msg->reply_to_address);
  check_address_vector ("to", msg->to);
  check_address_vector ("cc", msg->cc);
  fuzz_check_optional_text ("message_id", msg->message_id);
  FUZZ_CHECK (msg->message_id == NULL || *msg->message_id != '\0', "empty message_id");
  fuzz_check_optional_text ("in_reply_to", msg->in_reply_to);
  FUZZ_CHECK (msg->in_reply_to == NULL || *msg->in_reply_to != '\0', "empty in_reply_to");
  FUZZ_CHECK (msg->references != NULL, "references is NULL");
  for (char **r = msg->references; *r != NULL; r++)
    {
      fuzz_check_text ("reference", *r);
      FUZZ_CHECK (**r != '\0', "empty reference");
    }
  fuzz_check_optional_text ("date", msg->date);
  FUZZ_CHECK (msg->date != NULL || msg->date_unix == 0, "a date_unix without a Date");
  fuzz_check_optional_text ("content_language", msg->content_language);
  fuzz_check_text ("body_text", msg->body_text);

  FUZZ_CHECK (msg->attachments != NULL, "attachments is NULL");
  FUZZ_CHECK (msg->attachments->len <= 500, "%u attachments", msg->attachments->len);
  for (guint i = 0; i < msg->attachments->len; i++)
    {
      const TmAttachment *attachment = g_ptr_array_index (msg->attachments, i);
      fuzz_check_text ("attachment filename", attachment->filename);
      fuzz_check_text ("attachment content_type", attachment->content_type);
      FUZZ_CHECK (strchr (attachment->content_type, '/') != NULL, "content type \"%s\"",
                  attachment->content_type);
    }

  FUZZ_CHECK (msg->headers != NULL, "headers is NULL");
  for (guint i = 0; i < msg->headers->len; i++)
    check_header (msg, g_ptr_array_index (msg->headers, i));

  FUZZ_CHECK (msg->warnings != NULL, "warnings is NULL");
  /* MAX_WARNINGS kept plus one "N more warnings not shown". */
  FUZZ_CHECK (msg->warnings->len <= 33, "%u warnings", msg->warnings->len);
  for (guint i = 0; i < msg->warnings->len; i++)
    fuzz_check_text ("warning", g_ptr_array_index (msg->warnings, i));

  /* The daemon's parse leaves the hash out when there is a Message-ID. */
  gboolean hash_skipped = options != NULL && options->hash_only_without_message_id
                          && msg->message_id != NULL;
  FUZZ_CHECK (hash_skipped == (msg->content_hash == NULL), "content hash %s",
              hash_skipped ? "computed though not asked for" : "missing");
  if (msg->content_hash != NULL)
    {
      FUZZ_CHECK (strlen (msg->content_hash) == 64, "content hash \"%s\"", msg->content_hash);
      for (const char *c = msg->content_hash; *c != '\0'; c++)
        FUZZ_CHECK (g_ascii_isxdigit (*c) && !g_ascii_isupper (*c), "content hash \"%s\"",
                    msg->content_hash);
    }

  gboolean truncated = options != NULL && options->truncated;
  FUZZ_CHECK (msg->truncated == truncated, "truncated flag not copied");
  gsize expected_size = truncated && options->original_size > length ? options->original_size
                                                                     : length;
  FUZZ_CHECK (msg->size == expected_size, "size %zu, expected %zu", msg->size, expected_size);
}

static gboolean
same_string (const char *a, const char *b)
{
  return g_strcmp0 (a, b) == 0;
}

/* What is read from the header block alone cannot depend on line ends. */
static void
check_same_headers (const TmMessage *lf, const TmMessage *crlf)
{
  FUZZ_CHECK (strcmp (lf->content_hash, crlf->content_hash) == 0,
              "content hash differs between LF and CRLF copies");
  FUZZ_CHECK (lf->headers->len == crlf->headers->len, "%u headers with LF, %u with CRLF",
              lf->headers->len, crlf->headers->len);
  for (guint i = 0; i < lf->headers->len; i++)
    {
      const TmHeader *a = g_ptr_array_index (lf->headers, i);
      const TmHeader *b = g_ptr_array_index (crlf->headers, i);
      FUZZ_CHECK (same_string (a->name, b->name) && same_string (a->value, b->value),
                  "header %u differs: \"%s: %s\" with LF, \"%s: %s\" with CRLF", i, a->name,
                  a->value, b->name, b->value);
    }
  FUZZ_CHECK (same_string (lf->subject, crlf->subject), "subject \"%s\" vs \"%s\"",
              lf->subject, crlf->subject);
  FUZZ_CHECK (same_string (lf->message_id, crlf->message_id), "message_id differs");
  FUZZ_CHECK (same_string (lf->in_reply_to, crlf->in_reply_to), "in_reply_to differs");
  FUZZ_CHECK (g_strv_equal ((const char *const *) lf->references,
                            (const char *const *) crlf->references),
              "references differ");
  FUZZ_CHECK (same_string (lf->date, crlf->date) && lf->date_unix == crlf->date_unix,
              "date differs");
  FUZZ_CHECK (same_string (lf->content_language, crlf->content_language),
              "content_language differs");
}

/* A copy with each LF that has no CR before it made CRLF, or NULL when
 * there is none. */
static char *
crlf_copy (const char *data, gsize size, gsize *out_size)
{
  gsize bare = 0;
  for (gsize i = 0; i < size; i++)
    if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
      bare++;
  if (bare == 0)
    return NULL;
  char *copy = g_malloc (size + bare);
  gsize o = 0;
  for (gsize i = 0; i < size; i++)
    {
      if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
        copy[o++] = '\r';
      copy[o++] = data[i];
    }
  *out_size = o;
  return copy;
}

static void
parse_checked (const char *data, gsize size, const TmParseOptions *options)
{
  /* An exact-size heap copy, so that ASan sees any read past the end. */
  char *copy = g_memdup2 (data, size);
  TmMessage *msg = tm_message_parse (copy, size, options);
  check_message (msg, size, options);
  tm_message_free (&msg);
  FUZZ_CHECK (msg == NULL, "tm_message_free did not clear the pointer");
  g_free (copy);
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  const char *raw = (const char *) data;

  /* 1 and 2: as sent, and with CRLF line ends. */
  TmMessage *lf = tm_message_parse (raw, size, NULL);
  check_message (lf, size, NULL);
  gsize crlf_size = 0;
  g_autofree char *crlf_raw = crlf_copy (raw, size, &crlf_size);
  if (crlf_raw != NULL)
    {
      TmMessage *crlf = tm_message_parse (crlf_raw, crlf_size, NULL);
      check_message (crlf, crlf_size, NULL);
      check_same_headers (lf, crlf);
      tm_message_free (&crlf);
    }
  tm_message_free (&lf);

  /* 3: other options, chosen by the input itself. */
  guint variant = size == 0 ? 0 : (guint) (data[size - 1] + size) % 5;
  /* As milter.c and ticketctl parse: the hash only without a Message-ID. */
  TmParseOptions options = { .hash_only_without_message_id = (size & 1) == 0 };
  gsize parse_size = size;
  switch (variant)
    {
    case 0:
      options.fallback_charsets = arabic_fallbacks;
      break;
    case 1:
      options.fallback_charsets = no_fallbacks;
      break;
    case 2:
      options.fallback_charsets = odd_fallbacks;
      break;
    case 3:
      /* The milter keeps the first max_message_size bytes: a cut at any
       * byte, inside a character, a header or a boundary. */
      parse_size = size - size / 3;
      options.truncated = TRUE;
      options.original_size = size;
      break;
    default:
      /* Flagged truncated, but with a size that says otherwise. */
      options.truncated = TRUE;
      options.original_size = size / 2;
      break;
    }
  parse_checked (raw, parse_size, &options);
  return 0;
}
