/* rules.h - keyword rules: tags, priority, team and language for a mail.
 *
 * Rules are [rule NAME] groups, in the main configuration file or in a rules
 * file it names; they apply in file order. A rule has conditions and
 * actions (ticket-milter.conf(5)):
 *
 *   conditions (each a ';'-separated list of words, phrases or /GRegex/;
 *   a condition holds when any entry of its list matches):
 *     subject        the decoded subject
 *     body           the decoded text (the first 256 KiB)
 *     from           the From: address and display name
 *     to             the To: and Cc: addresses
 *     header.NAME    every value of the header NAME (e.g. header.X-Priority)
 *     attachment     attachment file names
 *     language       the mail's language as detected ("ar;fa"), exact tags
 *   match = all | any   how several conditions combine (default all)
 *
 *   actions:
 *     tags = billing;refund     added (a ticket's tags are a set)
 *     priority = low|normal|high|urgent   the highest priority set wins
 *     team = NAME               the first rule that sets a team wins
 *     template_language = fa    the first rule that sets one wins
 *     autoreply = no            no acknowledgement for this mail
 *     stop = yes                no later rule is looked at
 *
 * Words and phrases match case-insensitively on normalised text (see
 * normalize.h) at word boundaries; /pattern/ is a GRegex matched with
 * G_REGEX_CASELESS against the text normalised without case folding (so a
 * pattern's \W keeps its meaning); "/" inside a pattern needs no escape, as
 * only the first and last character delimit it. Every pattern is compiled
 * once, at load. A rule without conditions, without actions, with an unknown
 * key, an invalid regex, an unknown priority or a team for which
 * TEAM_EXISTS says no is a load error: "FILE: [rule NAME] KEY: what".
 *
 * Ownership: a TmRuleSet owns its rules; results own their strings.
 * Thread safety: a loaded set is read-only; tm_rules_apply() may run in many
 * threads at once.
 */
#ifndef TM_RULES_H
#define TM_RULES_H

#include <glib.h>

#include "message.h"

#define TM_RULES_ERROR (tm_rules_error_quark ())
GQuark tm_rules_error_quark (void);
typedef enum {
  TM_RULES_ERROR_INVALID,    /* "FILE: [rule NAME] KEY: what is wrong" */
} TmRulesError;

typedef struct TmRuleSet TmRuleSet;  /* opaque */

typedef gboolean (*TmTeamExistsFunc) (const char *team, gpointer user_data);

TmRuleSet *tm_rule_set_new (void) G_GNUC_WARN_UNUSED_RESULT;
void tm_rule_set_free (TmRuleSet **set);

/* Appends every [rule NAME] group of KEYFILE (read from FILE, used in
 * messages), in file order; other groups are ignored. A rule name used twice
 * (in this file or an earlier one) is an error. */
gboolean tm_rule_set_add_keyfile (TmRuleSet *set, GKeyFile *keyfile, const char *file,
                                  TmTeamExistsFunc team_exists, gpointer user_data,
                                  GError **error);
guint tm_rule_set_count (const TmRuleSet *set);

typedef struct {
  char *rule;                /* rule name */
  char *field;               /* "subject", "body", "header.X-Priority", ... */
  char *text;                /* the matched text in its normalised form (up
                                to 80 characters), or the language */
} TmRuleMatch;

typedef struct {
  char **tags;               /* NULL-terminated, in order of first appearance */
  char *priority;            /* NULL when no rule set one */
  char *team;                /* NULL when no rule set one */
  char *template_language;   /* NULL when no rule set one */
  gboolean suppress_autoreply;
  char *suppressed_by;       /* the rule that said autoreply = no, or NULL */
  GPtrArray *matches;        /* of TmRuleMatch*, one per rule that matched
                                (its first matching condition) */
} TmRuleResult;

/* Evaluates the rules on MESSAGE; LANGUAGE is the detected language (may be
 * NULL). Fills *result, which the caller clears with tm_rule_result_clear(). */
void tm_rules_apply (const TmRuleSet *set, const TmMessage *message,
                     const char *language, TmRuleResult *result);
void tm_rule_result_clear (TmRuleResult *result);

/* "low" < "normal" < "high" < "urgent": 0..3, or -1 for anything else. */
int tm_priority_rank (const char *priority);

#endif
