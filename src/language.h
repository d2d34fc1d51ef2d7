/* language.h - which language to answer a customer in.
 *
 * The choice, in order (issue "Acknowledgements", DESIGN.md):
 *   1. a rule's choice, when a rule set one;
 *   2. the Content-Language header: the first tag whose primary subtag
 *      ("ar" of "ar-SA") has templates;
 *   3. the script of the subject and the text: Arabic-script letters that only
 *      Persian uses (U+067E pe, U+0686 tcheh, U+0698 jeh, U+06AF gaf, U+06CC
 *      Farsi yeh, U+06A9 keheh) make it "fa", other Arabic script "ar" -
 *      provided Arabic-script letters are at least a quarter of all letters
 *      seen, so that one Arabic name in an English mail does not decide;
 *   4. the queue's default language.
 * A language counts only when templates exist for it (AVAILABLE); the queue
 * default is returned even when it is not in AVAILABLE (configuration
 * checking makes sure it is).
 *
 * Bounded: at most the first 64 KiB of the text are looked at.
 * All functions are pure and thread-safe.
 */
#ifndef TM_LANGUAGE_H
#define TM_LANGUAGE_H

#include <glib.h>

typedef enum {
  TM_LANGUAGE_FROM_RULE,
  TM_LANGUAGE_FROM_CONTENT_LANGUAGE,
  TM_LANGUAGE_FROM_SCRIPT,
  TM_LANGUAGE_FROM_QUEUE_DEFAULT,
} TmLanguageSource;

/* TRUE for a language tag as the configuration and rules accept it: 2 to 16
 * ASCII letters, digits and '-', starting with a letter ("en", "pt-br"). */
gboolean tm_language_tag_is_valid (const char *tag);

/* "rule", "content-language", "script", "queue-default". Static string. */
const char *tm_language_source_name (TmLanguageSource source);

/* "fa", "ar", or NULL when the text is not (mostly) in Arabic script.
 * TEXT is UTF-8; LENGTH -1 for NUL-terminated. Static string. */
const char *tm_language_from_script (const char *text, gssize length);

/* The primary subtags of a Content-Language value, lower-cased, in order,
 * without duplicates: "ar-SA, en-GB" -> {"ar", "en", NULL}. Junk entries are
 * skipped. NULL value gives an empty vector. New vector. */
char **tm_language_tags_from_header (const char *content_language) G_GNUC_WARN_UNUSED_RESULT;

/* The decision described above. RULE_LANGUAGE and CONTENT_LANGUAGE may be
 * NULL; SUBJECT and BODY are UTF-8 (BODY may be NULL); AVAILABLE is a
 * NULL-terminated list of languages that have templates. Returns a new
 * string and sets *source when SOURCE is not NULL. */
char *tm_language_choose (const char *rule_language, const char *content_language,
                          const char *subject, const char *body,
                          const char *const *available, const char *queue_default,
                          TmLanguageSource *source) G_GNUC_WARN_UNUSED_RESULT;

#endif
