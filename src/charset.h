/* charset.h - turn bytes of any declared charset into valid UTF-8.
 *
 * Mail lies about its charset, names charsets iconv does not know, and sends
 * raw 8-bit text with no charset at all. tm_charset_to_utf8() never fails:
 * it tries the declared charset, then UTF-8, then each fallback in order, and
 * as a last resort replaces every byte that cannot be decoded with U+FFFD.
 * NUL bytes become U+FFFD too, so the result is a C string.
 */
#ifndef TM_CHARSET_H
#define TM_CHARSET_H

#include <glib.h>

/* Returns newly allocated UTF-8. declared may be NULL or unknown; fallbacks
 * is NULL-terminated or NULL. When the declared charset was unknown or the
 * bytes did not fit it, a sentence saying so is appended to warnings (a
 * GPtrArray of char*, may be NULL). */
char *tm_charset_to_utf8 (const char *bytes, gsize length, const char *declared,
                          const char *const *fallbacks, GPtrArray *warnings)
  G_GNUC_WARN_UNUSED_RESULT;

#endif
