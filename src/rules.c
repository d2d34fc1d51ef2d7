/* rules.c - keyword rules: tags, priority, team and language for a mail.
 *
 * Loading (tm_rule_set_add_keyfile): every group "rule NAME" of the key
 * file becomes one rule, in file order; other groups are left to the
 * configuration. Keys of a rule group:
 *   conditions  subject, body, from, to, attachment, language, header.NAME
 *   combination match = all (default) | any
 *   actions     tags, priority, team, template_language, autoreply, stop
 * Values are read raw (g_key_file_get_value), so a regex keeps its
 * backslashes; lists are split at ';', with "\;" standing for a ';' inside
 * an entry (a regex such as /a\;b/). Entries are trimmed; empty ones are
 * dropped. An entry is a /regex/ when it starts and ends with '/' (at least
 * one character between), otherwise a word or phrase. A word is stored
 * normalised (casefolded) once; a regex is normalised without case folding
 * (so that فاتورة in a pattern also meets فاتوره) and compiled once with
 * G_REGEX_CASELESS | G_REGEX_OPTIMIZE.
 * Load errors (TM_RULES_ERROR_INVALID), each "FILE: [rule NAME] KEY: what":
 * unknown key, empty list, entry starting with '/' that is no /regex/,
 * "//", invalid regex, word that normalises to nothing, a pattern in
 * "language", unknown match/priority/autoreply/stop value, invalid
 * template_language or header name, a team TEAM_EXISTS rejects, no
 * condition, no action (autoreply = yes and stop = no alone do nothing),
 * a rule name used before (in this key file or an earlier one). A key file
 * with an error adds none of its rules.
 *
 * Applying (tm_rules_apply): rules are looked at in order until one with
 * stop = yes matches. Each message field is normalised at most once per
 * call, and only when a rule reads it: a per-call cache of FieldCache
 * entries, one per fixed field and one per header name that some rule
 * names (header fields are numbered at load). Each field is a list of
 * values, matched separately so that a phrase never spans two of them:
 *   subject      the decoded subject
 *   body         body_text cut at 256 KiB (BODY_LIMIT, on a character
 *                boundary) before normalising: the cost of rules on a huge
 *                mail stays bounded
 *   from         the display name and the address
 *   to           every To: and Cc: address
 *   header.NAME  every value of headers named NAME (any case), raw as in
 *                TmMessage (encoded words not decoded)
 *   attachment   every non-empty attachment file name
 *   language     the LANGUAGE argument, compared with the tags exactly
 *                (ASCII case-insensitively), not normalised
 * A regex that fails at match time (PCRE2 match limit on hostile text)
 * counts as no match. Regexes are matched without G_REGEX_MULTILINE: ^ and
 * $ are the ends of the whole field.
 * Cost: a field is normalised once without case folding (for regexes);
 * the folded form for words is made from it (tm_text_fold_case), sparing
 * a second NFKC pass. Words do not scan the text: at load every word entry
 * whose first word is all letters, marks and digits gets a number in the
 * set's dictionary (word_ids); per call, the first word entry that reads a
 * field cuts its folded values once into words (maximal runs of letters,
 * marks and digits, exactly the units between tm_text_find_word's
 * boundaries) and records where each dictionary word stands (WordIndex).
 * A single word is then an array read; a phrase is verified with
 * tm_text_word_at only where its first word stands; other entries ("a.b",
 * "-x") fall back to tm_text_find_word. Each regex also gets, at load, the
 * longest run of text every match must contain when a simple reading of
 * the pattern proves one (regex_required_text); a value without it is not
 * given to PCRE. With 200 rules on a 4 KB mail this takes the rules from
 * about 0.4 ms to 0.07 ms. A key file that fails to load leaves its words
 * in the dictionary, unused.
 *
 * Results: tags in order of first appearance without duplicates; the
 * highest priority (tm_priority_rank); the first team and the first
 * template_language; autoreply = no from any matching rule, naming the
 * first; one TmRuleMatch per matching rule, for its first condition that
 * held (in the order of the keys in the group). tm_rules_apply overwrites
 * *result without reading it.
 *
 * Ownership: the set owns its rules, words and GRegex objects; a result
 * owns its strings until tm_rule_result_clear.
 * Thread safety: loading is single-threaded; a loaded set is never
 * written again, and GRegex matching is re-entrant, so tm_rules_apply may
 * run in many threads at once (each call has its own cache).
 */
#include "rules.h"
#include "language.h"
#include "normalize.h"

#include <string.h>

/* How much of the body rules look at. */
#define BODY_LIMIT (256 * 1024)
/* The longest matched text kept in a TmRuleMatch, in characters. */
#define MATCH_TEXT_MAX 80

G_DEFINE_QUARK (tm-rules-error-quark, tm_rules_error)

typedef enum {
  FIELD_SUBJECT,
  FIELD_BODY,
  FIELD_FROM,
  FIELD_TO,
  FIELD_ATTACHMENT,
  FIELD_LANGUAGE,
  FIELD_FIRST_HEADER,  /* header.NAME fields follow, numbered at load */
} FieldId;

static const char *const fixed_field_keys[] = {
  [FIELD_SUBJECT] = "subject",
  [FIELD_BODY] = "body",
  [FIELD_FROM] = "from",
  [FIELD_TO] = "to",
  [FIELD_ATTACHMENT] = "attachment",
  [FIELD_LANGUAGE] = "language",
};

static const char *const priority_names[] = { "low", "normal", "high", "urgent", NULL };

typedef struct {
  char *word;              /* normalised word or phrase, or NULL */
  GRegex *regex;           /* or a compiled pattern */
  char *first_word;        /* WORD's first word when it is all letters, marks
                              and digits (so a match starts at a whole word
                              of the text and the word index can find it);
                              NULL for other words, patterns and languages */
  guint word_id;           /* FIRST_WORD's number in the set's dictionary */
  gboolean phrase;         /* WORD has more than one word */
  char *required;          /* text every match of REGEX contains, or NULL */
} Entry;

typedef struct {
  char *key;               /* as written: "subject", "header.X-Priority" */
  guint field;             /* FieldId, or FIELD_FIRST_HEADER + header index */
  GArray *entries;         /* of Entry, in the order written */
} Condition;

typedef struct {
  char *name;
  GPtrArray *conditions;   /* of Condition*, in key order */
  gboolean match_any;
  char **tags;             /* NULL when the rule sets none */
  char *priority;
  char *team;
  char *template_language;
  gboolean no_autoreply;
  gboolean stop;
} Rule;

struct TmRuleSet {
  GPtrArray *rules;        /* of Rule*, in load order */
  GHashTable *names;       /* rule name -> file that defined it */
  GPtrArray *header_names; /* of char*, header field i is header_names[i] */
  GHashTable *word_ids;    /* of WordKey* -> id + 1: every entry's FIRST_WORD */
};

/* A word as a piece of text, so that words of a mail are looked up where
 * they stand, without a copy. */
typedef struct {
  const char *start;
  gsize length;
} WordKey;

static guint
word_key_hash (gconstpointer data)
{
  const WordKey *key = data;
  guint32 hash = 5381;
  for (gsize i = 0; i < key->length; i++)
    hash = hash * 33 + (guchar) key->start[i];
  return hash;
}

static gboolean
word_key_equal (gconstpointer a, gconstpointer b)
{
  const WordKey *x = a, *y = b;
  return x->length == y->length && memcmp (x->start, y->start, x->length) == 0;
}

/* --- construction and destruction ------------------------------------------ */

static void
entry_clear (gpointer data)
{
  Entry *entry = data;
  g_clear_pointer (&entry->word, g_free);
  g_clear_pointer (&entry->regex, g_regex_unref);
  g_clear_pointer (&entry->first_word, g_free);
  g_clear_pointer (&entry->required, g_free);
}

static Condition *
condition_new (const char *key, guint field)
{
  Condition *condition = g_new0 (Condition, 1);
  condition->key = g_strdup (key);
  condition->field = field;
  condition->entries = g_array_new (FALSE, TRUE, sizeof (Entry));
  g_array_set_clear_func (condition->entries, entry_clear);
  return condition;
}

static void
condition_free (gpointer data)
{
  Condition *condition = data;
  g_free (condition->key);
  g_array_unref (condition->entries);
  g_free (condition);
}

static Rule *
rule_new (const char *name)
{
  Rule *rule = g_new0 (Rule, 1);
  rule->name = g_strdup (name);
  rule->conditions = g_ptr_array_new_with_free_func (condition_free);
  return rule;
}

static void
rule_free (gpointer data)
{
  Rule *rule = data;
  if (rule == NULL)
    return;
  g_free (rule->name);
  g_ptr_array_unref (rule->conditions);
  g_strfreev (rule->tags);
  g_free (rule->priority);
  g_free (rule->team);
  g_free (rule->template_language);
  g_free (rule);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Rule, rule_free)

TmRuleSet *
tm_rule_set_new (void)
{
  TmRuleSet *set = g_new0 (TmRuleSet, 1);
  set->rules = g_ptr_array_new_with_free_func (rule_free);
  set->names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  set->header_names = g_ptr_array_new_with_free_func (g_free);
  set->word_ids = g_hash_table_new_full (word_key_hash, word_key_equal, g_free, NULL);
  return set;
}

void
tm_rule_set_free (TmRuleSet **set)
{
  g_return_if_fail (set != NULL);
  if (*set == NULL)
    return;
  g_ptr_array_unref ((*set)->rules);
  g_hash_table_unref ((*set)->names);
  g_ptr_array_unref ((*set)->header_names);
  g_hash_table_unref ((*set)->word_ids);
  g_clear_pointer (set, g_free);
}

guint
tm_rule_set_count (const TmRuleSet *set)
{
  g_return_val_if_fail (set != NULL, 0);
  return set->rules->len;
}

int
tm_priority_rank (const char *priority)
{
  if (priority == NULL)
    return -1;
  for (int rank = 0; priority_names[rank] != NULL; rank++)
    if (strcmp (priority, priority_names[rank]) == 0)
      return rank;
  return -1;
}

/* --- loading ---------------------------------------------------------------- */

static void rule_error (GError **error, const char *file, const char *rule,
                        const char *key, const char *format, ...) G_GNUC_PRINTF (5, 6);

/* "FILE: [rule NAME] KEY: what", or "FILE: [rule NAME]: what" without KEY. */
static void
rule_error (GError **error, const char *file, const char *rule, const char *key,
            const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, TM_RULES_ERROR, TM_RULES_ERROR_INVALID, "%s: [rule %s]%s%s: %s",
               file, rule, key != NULL ? " " : "", key != NULL ? key : "", what);
}

/* Splits VALUE at ';' ("\;" is a literal ';'), trims the entries and drops
 * the empty ones. */
static GStrv
split_entries (const char *value)
{
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func (g_free);
  GString *current = g_string_new (NULL);
  for (const char *p = value;; p++)
    {
      if (*p == '\\' && p[1] == ';')
        {
          g_string_append_c (current, ';');
          p++;
          continue;
        }
      if (*p == '\\' && p[1] != '\0')
        {
          /* Copy "\x" whole, so that "\\;" is a backslash, then a separator. */
          g_string_append_len (current, p, 2);
          p++;
          continue;
        }
      if (*p == ';' || *p == '\0')
        {
          g_strstrip (current->str);
          if (current->str[0] != '\0')
            g_ptr_array_add (entries, g_strdup (current->str));
          g_string_truncate (current, 0);
          if (*p == '\0')
            break;
          continue;
        }
      g_string_append_c (current, *p);
    }
  g_string_free (current, TRUE);
  g_ptr_array_add (entries, NULL);
  return (GStrv) g_ptr_array_free (g_steal_pointer (&entries), FALSE);
}

/* The value of KEY, trimmed and checked to be UTF-8, or NULL with ERROR set. */
static char *
read_value (GKeyFile *keyfile, const char *group, const char *file, const char *rule,
            const char *key, GError **error)
{
  g_autofree char *value = g_key_file_get_value (keyfile, group, key, NULL);
  if (value == NULL)
    value = g_strdup ("");
  if (!g_utf8_validate (value, -1, NULL))
    {
      rule_error (error, file, rule, key, "not valid UTF-8");
      return NULL;
    }
  return g_strdup (g_strstrip (value));
}

/* A header name as RFC 5322 allows: printable ASCII other than ':'. */
static gboolean
header_name_is_valid (const char *name)
{
  if (*name == '\0')
    return FALSE;
  for (const char *c = name; *c != '\0'; c++)
    if ((guchar) *c <= ' ' || (guchar) *c >= 0x7f || *c == ':')
      return FALSE;
  return TRUE;
}

/* The field number of a header name, adding it when no rule used it yet. */
static guint
header_field (TmRuleSet *set, const char *name)
{
  g_autofree char *lower = g_ascii_strdown (name, -1);
  for (guint i = 0; i < set->header_names->len; i++)
    if (strcmp (g_ptr_array_index (set->header_names, i), lower) == 0)
      return FIELD_FIRST_HEADER + i;
  g_ptr_array_add (set->header_names, g_steal_pointer (&lower));
  return FIELD_FIRST_HEADER + set->header_names->len - 1;
}

/* The number of WORD in the set's dictionary, adding it when new. The key
 * holds its own copy of the text (in the same block), so that it outlives
 * the rules of a key file that failed to load; their numbers stay unused. */
static guint
word_id (TmRuleSet *set, const char *word)
{
  WordKey lookup = { word, strlen (word) };
  gpointer id = g_hash_table_lookup (set->word_ids, &lookup);
  if (id != NULL)
    return GPOINTER_TO_UINT (id) - 1;
  WordKey *key = g_malloc (sizeof (WordKey) + lookup.length + 1);
  char *text = (char *) (key + 1);
  memcpy (text, word, lookup.length + 1);
  key->start = text;
  key->length = lookup.length;
  guint new_id = g_hash_table_size (set->word_ids);
  g_hash_table_insert (set->word_ids, key, GUINT_TO_POINTER (new_id + 1));
  return new_id;
}

/* Fills ENTRY's FIRST_WORD, WORD_ID and PHRASE from its normalised WORD
 * (which has no white space at either end). Words are split at white
 * space, as tm_text_find_word splits a needle. */
static void
entry_index_word (TmRuleSet *set, Entry *entry)
{
  const char *end = entry->word;
  gboolean all_word_chars = TRUE;
  while (*end != '\0')
    {
      gunichar c = g_utf8_get_char (end);
      if (g_unichar_isspace (c))
        break;
      all_word_chars = all_word_chars && tm_unichar_is_word (c);
      end = g_utf8_next_char (end);
    }
  entry->phrase = *end != '\0';
  if (all_word_chars && end != entry->word)
    {
      entry->first_word = g_strndup (entry->word, (gsize) (end - entry->word));
      entry->word_id = word_id (set, entry->first_word);
    }
}

/* Whether C, as a literal in a G_REGEX_CASELESS pattern, matches C alone
 * in normalised text: digits, ASCII punctuation and space, and the Arabic
 * block, which has no case. (ASCII letters are left out: 'k' also meets
 * the Kelvin sign.) */
static gboolean
is_caseless_literal (gunichar c)
{
  if (c < 0x80)
    return !g_ascii_isalpha ((char) c) && !g_ascii_iscntrl ((char) c)
           && strchr ("\\^$.[]|()?*+{}", (int) c) == NULL;
  return c >= 0x0600 && c <= 0x06FF;
}

/* The length of a {n}, {n,} or {n,m} quantifier at P, or 0. */
static gsize
quantifier_length (const char *p)
{
  const char *q = p + 1;
  if (!g_ascii_isdigit (*q))
    return 0;
  while (g_ascii_isdigit (*q))
    q++;
  if (*q == ',')
    for (q++; g_ascii_isdigit (*q); q++)
      ;
  return *q == '}' ? (gsize) (q + 1 - p) : 0;
}

/* The longest run of characters that every match of PATTERN (a normalised
 * GRegex pattern, matched with G_REGEX_CASELESS) contains, or NULL when
 * none is certain. A regex whose required text is absent from a value
 * cannot match it, and strstr is far cheaper than the regex on a long
 * body. Only the simplest reading is trusted: literal characters in a row
 * at the top level (outside groups and classes) that no quantifier makes
 * optional, in a pattern without a top-level '|'; anything that could
 * change how the rest is read (option settings, comments, \Q, escapes
 * with arguments, back references) gives up. */
static char *
regex_required_text (const char *pattern)
{
  int depth = 0;
  const char *run = NULL, *run_last = NULL;  /* current run and its last character */
  const char *best = NULL;
  gsize best_length = 0;
  const char *p = pattern;
#define END_RUN(end)                                                     \
  do {                                                                   \
    if (run != NULL && (gsize) ((end) - run) > best_length)             \
      {                                                                  \
        best = run;                                                      \
        best_length = (gsize) ((end) - run);                             \
      }                                                                  \
    run = run_last = NULL;                                               \
  } while (0)
  while (*p != '\0')
    {
      gunichar c = g_utf8_get_char (p);
      const char *next = g_utf8_next_char (p);
      switch (c)
        {
        case '\\':
          if (*next == '\0' || g_ascii_isdigit (*next) || strchr ("xopPgkcNQEu", *next) != NULL)
            return NULL;
          END_RUN (p);
          next = g_utf8_next_char (next);
          break;
        case '[':
          {
            /* Skip the class: "[]" and "[^]" keep a literal ']' first. */
            const char *q = next;
            if (*q == '^')
              q++;
            if (*q == ']')
              q++;
            while (*q != ']')
              {
                if (*q == '\0')
                  return NULL;
                if (*q == '\\')
                  {
                    if (q[1] == '\0' || strchr ("xopPgkcNQEu", q[1]) != NULL)
                      return NULL;
                    q += 2;
                  }
                else if (*q == '[' && q[1] == ':')
                  {
                    const char *close = strstr (q + 2, ":]");
                    if (close == NULL)
                      return NULL;
                    q = close + 2;
                  }
                else
                  q++;
              }
            END_RUN (p);
            next = q + 1;
          }
          break;
        case '(':
          if (*next == '*' || (*next == '?' && strchr (":=!<>|P", next[1]) == NULL))
            return NULL;  /* verbs, option settings, comments, conditions, ... */
          END_RUN (p);
          depth++;
          break;
        case ')':
          if (depth == 0)
            return NULL;
          depth--;
          END_RUN (p);
          break;
        case '|':
          if (depth == 0)
            return NULL;
          END_RUN (p);
          break;
        case '?': case '*': case '+':
          END_RUN (run_last != NULL ? run_last : p);
          break;
        case '{':
          {
            gsize length = quantifier_length (p);
            if (length == 0)
              return NULL;
            END_RUN (run_last != NULL ? run_last : p);
            next = p + length;
          }
          break;
        default:
          if (depth > 0 || !is_caseless_literal (c))
            END_RUN (p);
          else
            {
              if (run == NULL)
                run = p;
              run_last = p;
            }
          break;
        }
      p = next;
    }
  if (depth != 0)
    return NULL;
  END_RUN (p);
#undef END_RUN
  return best != NULL ? g_strndup (best, best_length) : NULL;
}

/* The condition for KEY, or NULL when KEY is not a condition key (ERROR
 * unset) or is an invalid one (ERROR set). */
static Condition *
read_condition (TmRuleSet *set, GKeyFile *keyfile, const char *group, const char *file,
                const char *rule, const char *key, GError **error)
{
  guint field = G_MAXUINT;
  for (guint i = 0; i < G_N_ELEMENTS (fixed_field_keys); i++)
    if (strcmp (key, fixed_field_keys[i]) == 0)
      field = i;
  if (field == G_MAXUINT && g_str_has_prefix (key, "header."))
    {
      const char *name = key + strlen ("header.");
      if (!header_name_is_valid (name))
        {
          rule_error (error, file, rule, key, "\"%s\" is not a header name", name);
          return NULL;
        }
      field = header_field (set, name);
    }
  if (field == G_MAXUINT)
    return NULL;

  g_autofree char *value = read_value (keyfile, group, file, rule, key, error);
  if (value == NULL)
    return NULL;
  g_auto (GStrv) items = split_entries (value);
  if (items[0] == NULL)
    {
      rule_error (error, file, rule, key, "must list at least one word, phrase or /regex/");
      return NULL;
    }

  Condition *condition = condition_new (key, field);
  for (char **item = items; *item != NULL; item++)
    {
      Entry entry = { 0 };
      gsize length = strlen (*item);
      gboolean is_pattern = (*item)[0] == '/';
      if (field == FIELD_LANGUAGE)
        {
          if (is_pattern || !tm_language_tag_is_valid (*item))
            {
              rule_error (error, file, rule, key,
                          "\"%s\" is not a language tag such as en, ar or fa", *item);
              goto fail;
            }
          entry.word = g_ascii_strdown (*item, -1);
        }
      else if (is_pattern)
        {
          if (length < 2 || (*item)[length - 1] != '/')
            {
              rule_error (error, file, rule, key,
                          "\"%s\" starts with '/' but does not end with one: write /pattern/", *item);
              goto fail;
            }
          if (length == 2)
            {
              rule_error (error, file, rule, key, "empty pattern \"//\" would match everything");
              goto fail;
            }
          g_autofree char *pattern = tm_text_normalize (*item + 1, (gssize) length - 2,
                                                        TM_NORMALIZE_KEEP_CASE);
          g_autoptr (GError) regex_error = NULL;
          entry.regex = g_regex_new (pattern, G_REGEX_CASELESS | G_REGEX_OPTIMIZE, 0, &regex_error);
          if (entry.regex == NULL)
            {
              rule_error (error, file, rule, key, "invalid regex %s: %s", *item, regex_error->message);
              goto fail;
            }
          entry.required = regex_required_text (pattern);
        }
      else
        {
          entry.word = tm_text_normalize (*item, -1, TM_NORMALIZE_DEFAULT);
          g_strstrip (entry.word);
          if (entry.word[0] == '\0')
            {
              g_free (entry.word);
              rule_error (error, file, rule, key, "\"%s\" is empty once normalised", *item);
              goto fail;
            }
          entry_index_word (set, &entry);
        }
      g_array_append_val (condition->entries, entry);
    }
  return condition;

fail:
  condition_free (condition);
  return NULL;
}

static gboolean
read_yes_no (const char *value, gboolean *out)
{
  if (g_ascii_strcasecmp (value, "yes") == 0 || g_ascii_strcasecmp (value, "true") == 0)
    *out = TRUE;
  else if (g_ascii_strcasecmp (value, "no") == 0 || g_ascii_strcasecmp (value, "false") == 0)
    *out = FALSE;
  else
    return FALSE;
  return TRUE;
}

/* Reads an action or match key into RULE. Returns FALSE with ERROR set when
 * the value is wrong, FALSE without ERROR when KEY is unknown. */
static gboolean
read_setting (Rule *rule, GKeyFile *keyfile, const char *group, const char *file,
              const char *key, TmTeamExistsFunc team_exists, gpointer user_data,
              GError **error)
{
  static const char *const setting_keys[] = {
    "match", "tags", "priority", "team", "template_language", "autoreply", "stop", NULL
  };
  if (!g_strv_contains (setting_keys, key))
    return FALSE;
  g_autofree char *value = read_value (keyfile, group, file, rule->name, key, error);
  if (value == NULL)
    return FALSE;

  if (strcmp (key, "match") == 0)
    {
      if (strcmp (value, "all") != 0 && strcmp (value, "any") != 0)
        {
          rule_error (error, file, rule->name, key, "\"%s\" is neither all nor any", value);
          return FALSE;
        }
      rule->match_any = strcmp (value, "any") == 0;
    }
  else if (strcmp (key, "tags") == 0)
    {
      g_auto (GStrv) tags = split_entries (value);
      if (tags[0] == NULL)
        {
          rule_error (error, file, rule->name, key, "must list at least one tag");
          return FALSE;
        }
      g_strfreev (rule->tags);
      rule->tags = g_steal_pointer (&tags);
    }
  else if (strcmp (key, "priority") == 0)
    {
      if (tm_priority_rank (value) < 0)
        {
          rule_error (error, file, rule->name, key,
                      "unknown priority \"%s\": use low, normal, high or urgent", value);
          return FALSE;
        }
      rule->priority = g_steal_pointer (&value);
    }
  else if (strcmp (key, "team") == 0)
    {
      if (value[0] == '\0')
        {
          rule_error (error, file, rule->name, key, "must name a team");
          return FALSE;
        }
      if (team_exists != NULL && !team_exists (value, user_data))
        {
          rule_error (error, file, rule->name, key, "unknown team \"%s\": no [team %s] group is defined",
                      value, value);
          return FALSE;
        }
      rule->team = g_steal_pointer (&value);
    }
  else if (strcmp (key, "template_language") == 0)
    {
      if (!tm_language_tag_is_valid (value))
        {
          rule_error (error, file, rule->name, key,
                      "\"%s\" is not a language tag such as en, ar or fa", value);
          return FALSE;
        }
      rule->template_language = g_ascii_strdown (value, -1);
    }
  else
    {
      gboolean yes = FALSE;
      if (!read_yes_no (value, &yes))
        {
          rule_error (error, file, rule->name, key, "\"%s\" is neither yes nor no", value);
          return FALSE;
        }
      if (strcmp (key, "autoreply") == 0)
        rule->no_autoreply = !yes;
      else
        rule->stop = yes;
    }
  return TRUE;
}

static Rule *
read_rule (TmRuleSet *set, GKeyFile *keyfile, const char *group, const char *file,
           const char *name, TmTeamExistsFunc team_exists, gpointer user_data,
           GError **error)
{
  g_autoptr (Rule) rule = rule_new (name);
  g_auto (GStrv) keys = g_key_file_get_keys (keyfile, group, NULL, NULL);
  for (char **key = keys; key != NULL && *key != NULL; key++)
    {
      /* GKeyFile merges a group written twice and lists a repeated key
       * twice (both with the last value): the rule name is then used twice,
       * which is an error, and reading the key again would also leak the
       * first value of a setting. */
      for (char **earlier = keys; earlier < key; earlier++)
        if (strcmp (*earlier, *key) == 0)
          {
            rule_error (error, file, name, *key,
                        "given twice (or the rule name is used twice in this file)");
            return NULL;
          }
      GError *local_error = NULL;
      Condition *condition = read_condition (set, keyfile, group, file, name, *key, &local_error);
      if (condition != NULL)
        {
          g_ptr_array_add (rule->conditions, condition);
          continue;
        }
      if (local_error == NULL
          && read_setting (rule, keyfile, group, file, *key, team_exists, user_data, &local_error))
        continue;
      if (local_error == NULL)
        rule_error (&local_error, file, name, *key, "unknown key");
      g_propagate_error (error, local_error);
      return NULL;
    }
  if (rule->conditions->len == 0)
    {
      rule_error (error, file, name, NULL,
                  "no conditions: give at least one of subject, body, from, to, "
                  "header.NAME, attachment or language");
      return NULL;
    }
  if (rule->tags == NULL && rule->priority == NULL && rule->team == NULL
      && rule->template_language == NULL && !rule->no_autoreply && !rule->stop)
    {
      rule_error (error, file, name, NULL,
                  "no actions: give at least one of tags, priority, team, "
                  "template_language, autoreply = no or stop = yes");
      return NULL;
    }
  return g_steal_pointer (&rule);
}

gboolean
tm_rule_set_add_keyfile (TmRuleSet *set, GKeyFile *keyfile, const char *file,
                         TmTeamExistsFunc team_exists, gpointer user_data,
                         GError **error)
{
  g_return_val_if_fail (set != NULL, FALSE);
  g_return_val_if_fail (keyfile != NULL, FALSE);
  g_return_val_if_fail (file != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Rules of this file are collected first, so that a file with an error
   * leaves the set as it was. */
  g_autoptr (GPtrArray) loaded = g_ptr_array_new_with_free_func (rule_free);
  g_autoptr (GHashTable) loaded_names = g_hash_table_new (g_str_hash, g_str_equal);
  g_auto (GStrv) groups = g_key_file_get_groups (keyfile, NULL);
  for (char **group = groups; *group != NULL; group++)
    {
      if (!g_str_has_prefix (*group, "rule "))
        continue;
      const char *name = *group + strlen ("rule ");
      if (name[0] == '\0' || g_ascii_isspace (name[0])
          || g_ascii_isspace (name[strlen (name) - 1]))
        {
          g_set_error (error, TM_RULES_ERROR, TM_RULES_ERROR_INVALID,
                       "%s: [%s]: a rule needs a name, without white space at either end",
                       file, *group);
          return FALSE;
        }
      const char *earlier_file = g_hash_table_lookup (set->names, name);
      if (earlier_file != NULL || g_hash_table_contains (loaded_names, name))
        {
          rule_error (error, file, name, NULL, "a rule of this name is already defined in %s",
                      earlier_file != NULL ? earlier_file : file);
          return FALSE;
        }
      Rule *rule = read_rule (set, keyfile, *group, file, name, team_exists, user_data, error);
      if (rule == NULL)
        return FALSE;
      g_ptr_array_add (loaded, rule);
      g_hash_table_add (loaded_names, rule->name);
    }
  for (guint i = 0; i < loaded->len; i++)
    {
      Rule *rule = g_ptr_array_index (loaded, i);
      g_hash_table_insert (set->names, g_strdup (rule->name), g_strdup (file));
    }
  g_ptr_array_extend_and_steal (set->rules, g_steal_pointer (&loaded));
  return TRUE;
}

/* --- applying --------------------------------------------------------------- */

/* Where the dictionary's words occur in one field's normalised values, so
 * that a rule word costs an array read instead of a scan of the text. The
 * text is cut into words once, each a maximal run of letters, marks and
 * digits (tm_unichar_is_word): the unit between the boundaries of
 * tm_text_find_word. Only words some rule starts with are recorded. */
typedef struct {
  guint *last;             /* per word id: its last occurrence + 1, or 0 */
  GArray *occurrences;     /* of Occurrence */
} WordIndex;

typedef struct {
  guint value;             /* which of the field's values */
  guint offset;            /* byte offset of the word in it */
  guint previous;          /* the same word's previous occurrence + 1, or 0 */
} Occurrence;

/* One message field during one tm_rules_apply call; filled on first use. */
typedef struct {
  GPtrArray *raw;          /* of const char*, borrowed from the message */
  GPtrArray *folded;       /* of char*, normalised for words */
  GPtrArray *cased;        /* of char*, normalised without case folding */
  WordIndex *index;        /* of the FOLDED values, or NULL */
  char *body_cut;          /* the body's first BODY_LIMIT bytes, when longer */
} FieldCache;

typedef struct {
  const TmRuleSet *set;
  const TmMessage *message;
  const char *language;
  FieldCache *fields;      /* FIELD_FIRST_HEADER + header_names->len of them */
  guint n_fields;
} ApplyContext;

static void
add_raw (GPtrArray *raw, const char *value)
{
  if (value != NULL && value[0] != '\0')
    g_ptr_array_add (raw, (gpointer) value);
}

static GPtrArray *
field_raw (ApplyContext *context, guint field)
{
  FieldCache *cache = &context->fields[field];
  if (cache->raw != NULL)
    return cache->raw;
  const TmMessage *message = context->message;
  cache->raw = g_ptr_array_new ();
  switch (field)
    {
    case FIELD_SUBJECT:
      add_raw (cache->raw, message->subject);
      break;
    case FIELD_BODY:
      if (message->body_text != NULL && strlen (message->body_text) > BODY_LIMIT)
        {
          gsize cut = BODY_LIMIT;
          while (cut > 0 && ((guchar) message->body_text[cut] & 0xC0) == 0x80)
            cut--;
          cache->body_cut = g_strndup (message->body_text, cut);
          add_raw (cache->raw, cache->body_cut);
        }
      else
        add_raw (cache->raw, message->body_text);
      break;
    case FIELD_FROM:
      add_raw (cache->raw, message->from_name);
      add_raw (cache->raw, message->from_address);
      break;
    case FIELD_TO:
      for (char **address = message->to; address != NULL && *address != NULL; address++)
        add_raw (cache->raw, *address);
      for (char **address = message->cc; address != NULL && *address != NULL; address++)
        add_raw (cache->raw, *address);
      break;
    case FIELD_ATTACHMENT:
      for (guint i = 0; message->attachments != NULL && i < message->attachments->len; i++)
        add_raw (cache->raw, ((TmAttachment *) g_ptr_array_index (message->attachments, i))->filename);
      break;
    case FIELD_LANGUAGE:  /* compared in condition_holds, never normalised */
      g_assert_not_reached ();
      break;
    default:
      {
        const char *name = g_ptr_array_index (context->set->header_names, field - FIELD_FIRST_HEADER);
        for (guint i = 0; message->headers != NULL && i < message->headers->len; i++)
          {
            const TmHeader *header = g_ptr_array_index (message->headers, i);
            if (g_ascii_strcasecmp (header->name, name) == 0)
              add_raw (cache->raw, header->value);
          }
      }
      break;
    }
  return cache->raw;
}

/* The field's values normalised for words (FOLDED) or for regexes. */
static GPtrArray *
field_values (ApplyContext *context, guint field, gboolean folded)
{
  FieldCache *cache = &context->fields[field];
  GPtrArray **values = folded ? &cache->folded : &cache->cased;
  if (*values != NULL)
    return *values;
  if (folded)
    {
      /* From the cased form, which regexes on the field usually need as
       * well: one NFKC pass instead of two, at no extra cost otherwise. */
      GPtrArray *cased = field_values (context, field, FALSE);
      *values = g_ptr_array_new_full (cased->len, g_free);
      for (guint i = 0; i < cased->len; i++)
        g_ptr_array_add (*values, tm_text_fold_case (g_ptr_array_index (cased, i)));
      return *values;
    }
  GPtrArray *raw = field_raw (context, field);
  *values = g_ptr_array_new_full (raw->len, g_free);
  for (guint i = 0; i < raw->len; i++)
    g_ptr_array_add (*values, tm_text_normalize (g_ptr_array_index (raw, i), -1,
                                                 TM_NORMALIZE_KEEP_CASE));
  return *values;
}

static void
word_index_free (WordIndex *index)
{
  g_free (index->last);
  g_array_unref (index->occurrences);
  g_free (index);
}

static gboolean
is_word_at (const char *p)
{
  if ((guchar) *p < 0x80)
    return g_ascii_isalnum (*p);
  gunichar c = tm_text_char_at (p);
  return c != (gunichar) -1 && tm_unichar_is_word (c);
}

/* Records where the words of TEXT that the dictionary knows stand. */
static void
word_index_add (WordIndex *index, GHashTable *word_ids, guint value, const char *text)
{
  const char *p = text;
  while (*p != '\0')
    {
      if (!is_word_at (p))
        {
          p = tm_text_char_at (p) == (gunichar) -1 ? p + 1 : g_utf8_next_char (p);
          continue;
        }
      const char *start = p;
      do
        p = g_utf8_next_char (p);
      while (*p != '\0' && is_word_at (p));
      WordKey key = { start, (gsize) (p - start) };
      gpointer id = g_hash_table_lookup (word_ids, &key);
      if (id == NULL)
        continue;
      guint *last = &index->last[GPOINTER_TO_UINT (id) - 1];
      Occurrence occurrence = { value, (guint) (start - text), *last };
      g_array_append_val (index->occurrences, occurrence);
      *last = index->occurrences->len;
    }
}

/* The word index of the field's folded values, built on first use. */
static const WordIndex *
field_index (ApplyContext *context, guint field)
{
  FieldCache *cache = &context->fields[field];
  if (cache->index != NULL)
    return cache->index;
  GPtrArray *values = field_values (context, field, TRUE);
  GHashTable *word_ids = context->set->word_ids;
  cache->index = g_new0 (WordIndex, 1);
  cache->index->last = g_new0 (guint, MAX (g_hash_table_size (word_ids), 1));
  cache->index->occurrences = g_array_new (FALSE, FALSE, sizeof (Occurrence));
  for (guint v = 0; v < values->len; v++)
    word_index_add (cache->index, word_ids, v, g_ptr_array_index (values, v));
  return cache->index;
}

/* Whether ENTRY's word or phrase occurs in the field's folded value number
 * V: what tm_text_contains_word says, found through the word index when the
 * entry's first word is a plain word. */
static gboolean
word_occurs (ApplyContext *context, guint field, guint v, const Entry *entry)
{
  const char *value = g_ptr_array_index (field_values (context, field, TRUE), v);
  if (entry->first_word == NULL)
    return tm_text_contains_word (value, entry->word);
  /* A match starts where the first word stands alone in the text (a
   * boundary before it, and after it the end, a boundary or the white
   * space before the phrase's next word); a phrase is checked only there. */
  const WordIndex *index = field_index (context, field);
  for (guint o = index->last[entry->word_id]; o != 0;)
    {
      const Occurrence *occurrence = &g_array_index (index->occurrences, Occurrence, o - 1);
      if (occurrence->value == v
          && (!entry->phrase || tm_text_word_at (value, occurrence->offset, entry->word)))
        return TRUE;
      o = occurrence->previous;
    }
  return FALSE;
}

/* At most MATCH_TEXT_MAX characters of TEXT's first LENGTH bytes. */
static char *
match_text (const char *text, gsize length)
{
  const char *end = text;
  for (guint count = 0; count < MATCH_TEXT_MAX && (gsize) (end - text) < length; count++)
    end = g_utf8_next_char (end);
  if ((gsize) (end - text) > length)
    end = text + length;
  return g_strndup (text, (gsize) (end - text));
}

/* Whether CONDITION holds; *MATCHED gets the matched text when it does. */
static gboolean
condition_holds (ApplyContext *context, const Condition *condition, char **matched)
{
  if (condition->field == FIELD_LANGUAGE)
    {
      if (context->language == NULL)
        return FALSE;
      for (guint e = 0; e < condition->entries->len; e++)
        {
          const Entry *entry = &g_array_index (condition->entries, Entry, e);
          if (g_ascii_strcasecmp (entry->word, context->language) == 0)
            {
              *matched = g_strdup (entry->word);  /* the rule's tag: checked, lower-case */
              return TRUE;
            }
        }
      return FALSE;
    }

  for (guint e = 0; e < condition->entries->len; e++)
    {
      const Entry *entry = &g_array_index (condition->entries, Entry, e);
      GPtrArray *values = field_values (context, condition->field, entry->word != NULL);
      for (guint v = 0; v < values->len; v++)
        {
          const char *value = g_ptr_array_index (values, v);
          if (entry->word != NULL)
            {
              if (word_occurs (context, condition->field, v, entry))
                {
                  *matched = match_text (entry->word, strlen (entry->word));
                  return TRUE;
                }
              continue;
            }
          if (entry->required != NULL && strstr (value, entry->required) == NULL)
            continue;
          g_autoptr (GMatchInfo) info = NULL;
          if (g_regex_match (entry->regex, value, 0, &info))
            {
              int start = 0, end = 0;
              g_match_info_fetch_pos (info, 0, &start, &end);
              *matched = match_text (value + start, (gsize) (end - start));
              return TRUE;
            }
        }
    }
  return FALSE;
}

/* Whether RULE matches; *MATCH gets the report for its first condition
 * that held. */
static gboolean
rule_matches (ApplyContext *context, const Rule *rule, TmRuleMatch **match)
{
  const Condition *first_held = NULL;
  g_autofree char *first_text = NULL;
  for (guint c = 0; c < rule->conditions->len; c++)
    {
      const Condition *condition = g_ptr_array_index (rule->conditions, c);
      char *text = NULL;
      gboolean holds = condition_holds (context, condition, &text);
      if (holds && first_held == NULL)
        {
          first_held = condition;
          first_text = text;
        }
      else
        g_free (text);
      if (holds && rule->match_any)
        break;
      if (!holds && !rule->match_any)
        return FALSE;
    }
  if (first_held == NULL)
    return FALSE;
  *match = g_new0 (TmRuleMatch, 1);
  (*match)->rule = g_strdup (rule->name);
  (*match)->field = g_strdup (first_held->key);
  (*match)->text = g_steal_pointer (&first_text);
  return TRUE;
}

static void
rule_match_free (gpointer data)
{
  TmRuleMatch *match = data;
  g_free (match->rule);
  g_free (match->field);
  g_free (match->text);
  g_free (match);
}

void
tm_rules_apply (const TmRuleSet *set, const TmMessage *message,
                const char *language, TmRuleResult *result)
{
  g_return_if_fail (set != NULL);
  g_return_if_fail (message != NULL);
  g_return_if_fail (result != NULL);

  memset (result, 0, sizeof *result);
  result->matches = g_ptr_array_new_with_free_func (rule_match_free);
  GPtrArray *tags = g_ptr_array_new ();

  ApplyContext context = {
    .set = set,
    .message = message,
    .language = language,
    .n_fields = FIELD_FIRST_HEADER + set->header_names->len,
  };
  context.fields = g_new0 (FieldCache, context.n_fields);

  for (guint r = 0; r < set->rules->len; r++)
    {
      const Rule *rule = g_ptr_array_index (set->rules, r);
      TmRuleMatch *match = NULL;
      if (!rule_matches (&context, rule, &match))
        continue;
      g_ptr_array_add (result->matches, match);

      for (char **tag = rule->tags; tag != NULL && *tag != NULL; tag++)
        {
          gboolean seen = FALSE;
          for (guint t = 0; t < tags->len && !seen; t++)
            seen = strcmp (g_ptr_array_index (tags, t), *tag) == 0;
          if (!seen)
            g_ptr_array_add (tags, g_strdup (*tag));
        }
      if (rule->priority != NULL
          && tm_priority_rank (rule->priority) > tm_priority_rank (result->priority))
        {
          g_free (result->priority);
          result->priority = g_strdup (rule->priority);
        }
      if (rule->team != NULL && result->team == NULL)
        result->team = g_strdup (rule->team);
      if (rule->template_language != NULL && result->template_language == NULL)
        result->template_language = g_strdup (rule->template_language);
      if (rule->no_autoreply && !result->suppress_autoreply)
        {
          result->suppress_autoreply = TRUE;
          result->suppressed_by = g_strdup (rule->name);
        }
      if (rule->stop)
        break;
    }

  g_ptr_array_add (tags, NULL);
  result->tags = (char **) g_ptr_array_free (tags, FALSE);

  for (guint f = 0; f < context.n_fields; f++)
    {
      FieldCache *cache = &context.fields[f];
      g_clear_pointer (&cache->raw, g_ptr_array_unref);
      g_clear_pointer (&cache->folded, g_ptr_array_unref);
      g_clear_pointer (&cache->cased, g_ptr_array_unref);
      g_clear_pointer (&cache->index, word_index_free);
      g_free (cache->body_cut);
    }
  g_free (context.fields);
}

void
tm_rule_result_clear (TmRuleResult *result)
{
  g_return_if_fail (result != NULL);
  g_strfreev (result->tags);
  g_free (result->priority);
  g_free (result->team);
  g_free (result->template_language);
  g_free (result->suppressed_by);
  g_clear_pointer (&result->matches, g_ptr_array_unref);
  memset (result, 0, sizeof *result);
}
