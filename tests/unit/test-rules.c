/* test-rules.c - unit tests for rules.c: loading [rule NAME] groups from
 * GKeyFile text, their load errors, and applying them to parsed mail.
 *
 * Mails are written here as raw RFC 5322 text and parsed with
 * tm_message_parse, so that the fields rules read are the ones the
 * pipeline gives them. The example rules file is read from
 * $TM_CONTRIB_DIR/rules.conf.example; that test is skipped when
 * TM_CONTRIB_DIR is unset.
 */
#include "message.h"
#include "normalize.h"
#include "rules.h"

#include <string.h>

/* --- helpers ------------------------------------------------------------------ */

/* The teams a configuration would define. */
static gboolean
known_team (const char *team, gpointer user_data)
{
  static const char *const teams[] = { "billing", "logistics", "frontline", NULL };
  if (user_data != NULL)
    (*(guint *) user_data)++;
  return g_strv_contains (teams, team);
}

static gboolean
add_text (TmRuleSet *set, const char *text, const char *file, GError **error)
{
  g_autoptr (GKeyFile) keyfile = g_key_file_new ();
  g_assert_true (g_key_file_load_from_data (keyfile, text, -1, G_KEY_FILE_NONE, NULL));
  return tm_rule_set_add_keyfile (set, keyfile, file, known_team, NULL, error);
}

/* A rule set from TEXT, which must load. */
static TmRuleSet *
load_rules (const char *text)
{
  TmRuleSet *set = tm_rule_set_new ();
  g_autoptr (GError) error = NULL;
  if (!add_text (set, text, "rules.conf", &error))
    g_error ("rules did not load: %s", error->message);
  return set;
}

/* TEXT must fail to load with a message that contains EXPECTED. */
static void
assert_load_error (const char *text, const char *expected)
{
  TmRuleSet *set = tm_rule_set_new ();
  g_autoptr (GError) error = NULL;
  g_assert_false (add_text (set, text, "rules.conf", &error));
  g_assert_error (error, TM_RULES_ERROR, TM_RULES_ERROR_INVALID);
  if (strstr (error->message, expected) == NULL)
    g_error ("error \"%s\" does not contain \"%s\"", error->message, expected);
  g_assert_true (g_str_has_prefix (error->message, "rules.conf: [rule "));
  g_assert_cmpuint (tm_rule_set_count (set), ==, 0);
  tm_rule_set_free (&set);
  g_assert_null (set);
}

/* A parsed mail from its header block and body (LF line ends). */
static TmMessage *
parse_mail (const char *headers, const char *body)
{
  g_autofree char *raw = g_strdup_printf ("%s\n%s", headers, body);
  return tm_message_parse (raw, strlen (raw), NULL);
}

static TmMessage *
mail_with_subject (const char *subject)
{
  g_autofree char *headers = g_strdup_printf ("From: Customer <customer@example.org>\n"
                                              "To: support@example.com\n"
                                              "Subject: %s\n"
                                              "Content-Type: text/plain; charset=UTF-8\n",
                                              subject);
  return parse_mail (headers, "Hello.\n");
}

static TmMessage *
mail_with_body (const char *body)
{
  return parse_mail ("From: customer@example.org\n"
                     "To: support@example.com\n"
                     "Subject: question\n"
                     "Content-Type: text/plain; charset=UTF-8\n", body);
}

/* The names of the rules that matched, ';'-joined. */
static char *
matched_rules (const TmRuleResult *result)
{
  GString *names = g_string_new (NULL);
  for (guint i = 0; i < result->matches->len; i++)
    {
      const TmRuleMatch *match = g_ptr_array_index (result->matches, i);
      if (i > 0)
        g_string_append_c (names, ';');
      g_string_append (names, match->rule);
    }
  return g_string_free (names, FALSE);
}

static char *
joined_tags (const TmRuleResult *result)
{
  return g_strjoinv (";", result->tags);
}

/* Applies SET to MESSAGE and returns the names of the matching rules. */
static char *
apply_names (const TmRuleSet *set, const TmMessage *message, const char *language)
{
  TmRuleResult result;
  tm_rules_apply (set, message, language, &result);
  char *names = matched_rules (&result);
  tm_rule_result_clear (&result);
  return names;
}

/* --- loading ------------------------------------------------------------------ */

static void
test_load_counts_rule_groups_only (void)
{
  TmRuleSet *set = load_rules ("[queue support]\naddress = support@example.com\n"
                               "[rule one]\nsubject = a\ntags = x\n"
                               "[team frontline]\nmailbox = f@example.com\n"
                               "[rule two]\nbody = b\ntags = y\n"
                               "[rules]\nignored = yes\n");
  g_assert_cmpuint (tm_rule_set_count (set), ==, 2);
  tm_rule_set_free (&set);
  tm_rule_set_free (&set);  /* clearing the pointer makes a second free harmless */
}

static void
test_load_rules_in_file_order_across_keyfiles (void)
{
  TmRuleSet *set = tm_rule_set_new ();
  g_autoptr (GError) error = NULL;
  g_assert_true (add_text (set, "[rule first]\nsubject = hello\nteam = billing\n", "a.conf", &error));
  g_assert_true (add_text (set, "[rule second]\nsubject = hello\nteam = logistics\n", "b.conf", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (tm_rule_set_count (set), ==, 2);

  TmMessage *msg = mail_with_subject ("hello");
  TmRuleResult result;
  tm_rules_apply (set, msg, NULL, &result);
  g_autofree char *names = matched_rules (&result);
  g_assert_cmpstr (names, ==, "first;second");
  g_assert_cmpstr (result.team, ==, "billing");
  tm_rule_result_clear (&result);
  tm_message_free (&msg);
  tm_rule_set_free (&set);
}

static void
test_team_callback_sees_each_team (void)
{
  TmRuleSet *set = tm_rule_set_new ();
  g_autoptr (GKeyFile) keyfile = g_key_file_new ();
  g_assert_true (g_key_file_load_from_data (keyfile,
                                            "[rule a]\nsubject = x\nteam = billing\n"
                                            "[rule b]\nsubject = y\ntags = t\n"
                                            "[rule c]\nsubject = z\nteam = frontline\n",
                                            -1, G_KEY_FILE_NONE, NULL));
  guint calls = 0;
  g_autoptr (GError) error = NULL;
  g_assert_true (tm_rule_set_add_keyfile (set, keyfile, "r.conf", known_team, &calls, &error));
  g_assert_cmpuint (calls, ==, 2);
  tm_rule_set_free (&set);
}

/* --- load errors ------------------------------------------------------------------ */

static void
test_error_invalid_regex (void)
{
  assert_load_error ("[rule broken]\nsubject = fine;/re(fund/\ntags = x\n",
                     "rules.conf: [rule broken] subject: invalid regex /re(fund/");
}

static void
test_error_unknown_key (void)
{
  assert_load_error ("[rule typo]\nsubjet = refund\ntags = x\n",
                     "rules.conf: [rule typo] subjet: unknown key");
  assert_load_error ("[rule r]\nsubject = refund\ntags = x\nheader = X-Priority\n",
                     "rules.conf: [rule r] header: unknown key");
}

static void
test_error_unknown_action_value (void)
{
  assert_load_error ("[rule r]\nsubject = a\nautoreply = maybe\n",
                     "[rule r] autoreply: \"maybe\" is neither yes nor no");
  assert_load_error ("[rule r]\nsubject = a\nstop = sometimes\ntags = x\n",
                     "[rule r] stop: \"sometimes\" is neither yes nor no");
  assert_load_error ("[rule r]\nsubject = a\nmatch = some\ntags = x\n",
                     "[rule r] match: \"some\" is neither all nor any");
  assert_load_error ("[rule r]\nsubject = a\ntemplate_language = arabic language\n",
                     "[rule r] template_language: \"arabic language\" is not a language tag");
  assert_load_error ("[rule r]\nsubject = a\ntags = ; ;\n",
                     "[rule r] tags: must list at least one tag");
}

static void
test_error_unknown_priority (void)
{
  assert_load_error ("[rule r]\nsubject = a\npriority = critical\n",
                     "rules.conf: [rule r] priority: unknown priority \"critical\"");
}

static void
test_error_unknown_team (void)
{
  assert_load_error ("[rule r]\nsubject = a\nteam = sales\n",
                     "rules.conf: [rule r] team: unknown team \"sales\"");
}

static void
test_error_no_conditions (void)
{
  assert_load_error ("[rule lonely]\ntags = x\npriority = high\n",
                     "rules.conf: [rule lonely]: no conditions");
}

/* GKeyFile merges a group written twice; its keys then come twice
 * (found by fuzz-config). */
static void
test_error_rule_written_twice (void)
{
  assert_load_error ("[rule twin]\nsubject = a\ntags = x\n[rule twin]\nsubject = b\ntags = y\n",
                     "given twice");
}

static void
test_error_no_actions (void)
{
  assert_load_error ("[rule idle]\nsubject = refund\n", "rules.conf: [rule idle]: no actions");
  /* Values that do nothing are no actions either. */
  assert_load_error ("[rule idle]\nsubject = refund\nautoreply = yes\nstop = no\nmatch = any\n",
                     "[rule idle]: no actions");
}

static void
test_error_duplicate_name_across_keyfiles (void)
{
  TmRuleSet *set = tm_rule_set_new ();
  g_autoptr (GError) error = NULL;
  g_assert_true (add_text (set, "[rule billing]\nsubject = invoice\ntags = billing\n",
                           "/etc/ticket-milter/ticket-milter.conf", &error));
  g_assert_false (add_text (set, "[rule other]\nsubject = x\ntags = y\n"
                                 "[rule billing]\nsubject = payment\ntags = billing\n",
                            "/etc/ticket-milter/rules.conf", &error));
  g_assert_error (error, TM_RULES_ERROR, TM_RULES_ERROR_INVALID);
  g_assert_cmpstr (error->message, ==,
                   "/etc/ticket-milter/rules.conf: [rule billing]: a rule of this name is "
                   "already defined in /etc/ticket-milter/ticket-milter.conf");
  /* The failing file added none of its rules, not even the good one. */
  g_assert_cmpuint (tm_rule_set_count (set), ==, 1);
  tm_rule_set_free (&set);
}

static void
test_error_empty_pattern (void)
{
  assert_load_error ("[rule r]\nsubject = refund;//\ntags = x\n",
                     "rules.conf: [rule r] subject: empty pattern \"//\"");
}

static void
test_error_bad_entries (void)
{
  assert_load_error ("[rule r]\nsubject = /re(fund|turn)s?\ntags = x\n",
                     "[rule r] subject: \"/re(fund|turn)s?\" starts with '/' but does not end with one");
  assert_load_error ("[rule r]\nbody = ;  ;\ntags = x\n",
                     "[rule r] body: must list at least one word");
  assert_load_error ("[rule r]\nbody = ـــ\ntags = x\n",
                     "[rule r] body: \"ـــ\" is empty once normalised");
  assert_load_error ("[rule r]\nlanguage = /ar|fa/\ntags = x\n",
                     "[rule r] language: \"/ar|fa/\" is not a language tag");
  assert_load_error ("[rule r]\nheader. = x\ntags = x\n",
                     "[rule r] header.: \"\" is not a header name");
  assert_load_error ("[rule ]\nsubject = x\ntags = x\n", "[rule ]: a rule needs a name");
}

static void
test_error_invalid_utf8_value (void)
{
  TmRuleSet *set = tm_rule_set_new ();
  g_autoptr (GKeyFile) keyfile = g_key_file_new ();
  g_assert_true (g_key_file_load_from_data (keyfile, "[rule r]\nsubject = a\ntags = x\n",
                                            -1, G_KEY_FILE_NONE, NULL));
  g_key_file_set_value (keyfile, "rule r", "subject", "caf\xe9");
  g_autoptr (GError) error = NULL;
  g_assert_false (tm_rule_set_add_keyfile (set, keyfile, "r.conf", NULL, NULL, &error));
  g_assert_error (error, TM_RULES_ERROR, TM_RULES_ERROR_INVALID);
  g_assert_cmpstr (error->message, ==, "r.conf: [rule r] subject: not valid UTF-8");
  tm_rule_set_free (&set);
}

/* --- conditions --------------------------------------------------------------------- */

static void
test_condition_subject (void)
{
  TmRuleSet *set = load_rules ("[rule refund]\nsubject = refund;money back\ntags = refund\n");
  TmMessage *yes = mail_with_subject ("Please REFUND my order!");
  TmMessage *phrase = mail_with_subject ("I want my money  back");
  TmMessage *no = mail_with_subject ("refunded already, thanks");
  TmMessage *encoded = mail_with_subject ("=?UTF-8?B?2KfYs9iq2LHYr9in2K8gcmVmdW5k?=");
  g_autofree char *a = apply_names (set, yes, NULL);
  g_autofree char *b = apply_names (set, phrase, NULL);
  g_autofree char *c = apply_names (set, no, NULL);
  g_autofree char *d = apply_names (set, encoded, NULL);
  g_assert_cmpstr (a, ==, "refund");
  g_assert_cmpstr (b, ==, "refund");
  g_assert_cmpstr (c, ==, "");
  g_assert_cmpstr (d, ==, "refund");
  tm_message_free (&yes);
  tm_message_free (&phrase);
  tm_message_free (&no);
  tm_message_free (&encoded);
  tm_rule_set_free (&set);
}

static void
test_condition_body_normalised (void)
{
  TmRuleSet *set = load_rules ("[rule invoice]\nbody = فاتورة;کارت\ntags = billing\n");
  TmMessage *harakat = mail_with_body ("أين فَاتُورَة الشهر؟\n");
  TmMessage *keyboard = mail_with_body ("مشکل با كارت بانکی\n");
  TmMessage *inside = mail_with_body ("أرسلوا الفاتورة\n");
  g_autofree char *a = apply_names (set, harakat, NULL);
  g_autofree char *b = apply_names (set, keyboard, NULL);
  g_autofree char *c = apply_names (set, inside, NULL);
  g_assert_cmpstr (a, ==, "invoice");
  g_assert_cmpstr (b, ==, "invoice");
  g_assert_cmpstr (c, ==, "");
  tm_message_free (&harakat);
  tm_message_free (&keyboard);
  tm_message_free (&inside);
  tm_rule_set_free (&set);
}

static void
test_condition_from_name_and_address (void)
{
  TmRuleSet *set = load_rules ("[rule vip]\nfrom = bigcorp.example;Ahmad Karimi\npriority = high\n");
  TmMessage *by_domain = parse_mail ("From: someone@bigcorp.example\nTo: support@example.com\n"
                                     "Subject: hi\n", "x\n");
  TmMessage *by_name = parse_mail ("From: \"AHMAD  KARIMI\" <ak@mail.example>\n"
                                   "To: support@example.com\nSubject: hi\n", "x\n");
  TmMessage *other = parse_mail ("From: someone@notbigcorp.example\nTo: support@example.com\n"
                                 "Subject: bigcorp.example\n", "x\n");
  g_autofree char *a = apply_names (set, by_domain, NULL);
  g_autofree char *b = apply_names (set, by_name, NULL);
  g_autofree char *c = apply_names (set, other, NULL);
  g_assert_cmpstr (a, ==, "vip");
  g_assert_cmpstr (b, ==, "vip");
  g_assert_cmpstr (c, ==, "");
  tm_message_free (&by_domain);
  tm_message_free (&by_name);
  tm_message_free (&other);
  tm_rule_set_free (&set);
}

static void
test_condition_to_and_cc (void)
{
  TmRuleSet *set = load_rules ("[rule billing-address]\nto = billing@example.com\nteam = billing\n");
  TmMessage *to = parse_mail ("From: a@example.org\nTo: Billing <BILLING@example.com>\nSubject: s\n", "x\n");
  TmMessage *cc = parse_mail ("From: a@example.org\nTo: support@example.com\n"
                              "Cc: x@example.org, billing@example.com\nSubject: s\n", "x\n");
  TmMessage *neither = parse_mail ("From: billing@example.com\nTo: support@example.com\n"
                                   "Subject: billing@example.com\n", "billing@example.com\n");
  g_autofree char *a = apply_names (set, to, NULL);
  g_autofree char *b = apply_names (set, cc, NULL);
  g_autofree char *c = apply_names (set, neither, NULL);
  g_assert_cmpstr (a, ==, "billing-address");
  g_assert_cmpstr (b, ==, "billing-address");
  g_assert_cmpstr (c, ==, "");
  tm_message_free (&to);
  tm_message_free (&cc);
  tm_message_free (&neither);
  tm_rule_set_free (&set);
}

static void
test_condition_header_every_value (void)
{
  TmRuleSet *set = load_rules ("[rule flagged]\nheader.X-Priority = /^[12]\\b/\npriority = high\n"
                               "[rule tagged]\nheader.x-customer-tier = gold\ntags = gold\n");
  TmMessage *flagged = parse_mail ("From: a@example.org\nTo: support@example.com\nSubject: s\n"
                                   "X-Priority: 3 (Normal)\nx-priority: 1 (Highest)\n", "x\n");
  TmMessage *normal = parse_mail ("From: a@example.org\nTo: support@example.com\nSubject: s\n"
                                  "X-Priority: 3 (Normal)\nX-Customer-Tier: silver\n", "x\n");
  TmMessage *gold = parse_mail ("From: a@example.org\nTo: support@example.com\nSubject: s\n"
                                "X-CUSTOMER-TIER: Gold\n", "x\n");

  TmRuleResult result;
  tm_rules_apply (set, flagged, NULL, &result);
  g_assert_cmpstr (result.priority, ==, "high");
  g_assert_cmpuint (result.matches->len, ==, 1);
  const TmRuleMatch *match = g_ptr_array_index (result.matches, 0);
  g_assert_cmpstr (match->field, ==, "header.X-Priority");
  g_assert_cmpstr (match->text, ==, "1");
  tm_rule_result_clear (&result);

  g_autofree char *b = apply_names (set, normal, NULL);
  g_autofree char *c = apply_names (set, gold, NULL);
  g_assert_cmpstr (b, ==, "");
  g_assert_cmpstr (c, ==, "tagged");
  tm_message_free (&flagged);
  tm_message_free (&normal);
  tm_message_free (&gold);
  tm_rule_set_free (&set);
}

static void
test_condition_attachment (void)
{
  TmRuleSet *set = load_rules ("[rule invoice-pdf]\nattachment = /\\.pdf$/;فاتورة\ntags = has-invoice\n");
  const char *headers = "From: a@example.org\nTo: support@example.com\nSubject: s\n"
                        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n";
  TmMessage *pdf = parse_mail (headers,
                               "--b\nContent-Type: text/plain\n\nsee attached\n"
                               "--b\nContent-Type: application/pdf\n"
                               "Content-Disposition: attachment; filename=\"Order 42.PDF\"\n"
                               "Content-Transfer-Encoding: base64\n\nJVBERi0=\n--b--\n");
  TmMessage *named = parse_mail (headers,
                                 "--b\nContent-Type: text/plain\n\nsee attached\n"
                                 "--b\nContent-Type: image/png\n"
                                 "Content-Disposition: attachment; filename*=UTF-8''%D9%81%D8%A7%D8%AA%D9%88%D8%B1%D9%87.png\n"
                                 "Content-Transfer-Encoding: base64\n\niVBORw==\n--b--\n");
  TmMessage *none = mail_with_body ("the file is invoice.pdf\n");
  g_autofree char *a = apply_names (set, pdf, NULL);
  g_autofree char *b = apply_names (set, named, NULL);
  g_autofree char *c = apply_names (set, none, NULL);
  g_assert_cmpstr (a, ==, "invoice-pdf");
  g_assert_cmpstr (b, ==, "invoice-pdf");
  g_assert_cmpstr (c, ==, "");
  tm_message_free (&pdf);
  tm_message_free (&named);
  tm_message_free (&none);
  tm_rule_set_free (&set);
}

static void
test_condition_language (void)
{
  TmRuleSet *set = load_rules ("[rule rtl]\nlanguage = ar;FA\ntemplate_language = fa\n");
  TmMessage *msg = mail_with_subject ("hello");
  g_autofree char *fa = apply_names (set, msg, "fa");
  g_autofree char *ar = apply_names (set, msg, "AR");
  g_autofree char *en = apply_names (set, msg, "en");
  g_autofree char *ar_sa = apply_names (set, msg, "ar-SA");
  g_autofree char *none = apply_names (set, msg, NULL);
  g_assert_cmpstr (fa, ==, "rtl");
  g_assert_cmpstr (ar, ==, "rtl");
  g_assert_cmpstr (en, ==, "");
  g_assert_cmpstr (ar_sa, ==, "");
  g_assert_cmpstr (none, ==, "");

  TmRuleResult result;
  tm_rules_apply (set, msg, "fa", &result);
  const TmRuleMatch *match = g_ptr_array_index (result.matches, 0);
  g_assert_cmpstr (match->field, ==, "language");
  g_assert_cmpstr (match->text, ==, "fa");
  g_assert_cmpstr (result.template_language, ==, "fa");
  tm_rule_result_clear (&result);
  tm_message_free (&msg);
  tm_rule_set_free (&set);
}

/* --- words, phrases, patterns --------------------------------------------------------- */

static void
test_regex_caseless_on_normalised_text (void)
{
  TmRuleSet *set = load_rules ("[rule returns]\nsubject = /re(fund|turn)s?\\b/\ntags = r\n"
                               "[rule order]\nsubject = /order\\W+#?\\d{3,}/\ntags = order\n"
                               "[rule slash]\nsubject = /a/b\\;c/\ntags = slash\n"
                               "[rule invoice]\nsubject = /فاتورة\\s+\\d+/\ntags = invoice\n");
  TmMessage *refunds = mail_with_subject ("REFUNDS please");
  TmMessage *order = mail_with_subject ("Order ۱۲۳۴ missing");
  TmMessage *slash = mail_with_subject ("path A/B;C here");
  TmMessage *invoice = mail_with_subject ("فاتـوره ٥٥");
  TmMessage *none = mail_with_subject ("Ordered nothing");
  g_autofree char *a = apply_names (set, refunds, NULL);
  g_autofree char *b = apply_names (set, order, NULL);
  g_autofree char *c = apply_names (set, slash, NULL);
  g_autofree char *d = apply_names (set, invoice, NULL);
  g_autofree char *e = apply_names (set, none, NULL);
  g_assert_cmpstr (a, ==, "returns");
  g_assert_cmpstr (b, ==, "order");
  g_assert_cmpstr (c, ==, "slash");
  g_assert_cmpstr (d, ==, "invoice");
  g_assert_cmpstr (e, ==, "");

  /* The reported text is the match in the un-case-folded normalised text. */
  TmRuleResult result;
  tm_rules_apply (set, order, NULL, &result);
  const TmRuleMatch *match = g_ptr_array_index (result.matches, 0);
  g_assert_cmpstr (match->rule, ==, "order");
  g_assert_cmpstr (match->field, ==, "subject");
  g_assert_cmpstr (match->text, ==, "Order 1234");
  tm_rule_result_clear (&result);

  tm_message_free (&refunds);
  tm_message_free (&order);
  tm_message_free (&slash);
  tm_message_free (&invoice);
  tm_message_free (&none);
  tm_rule_set_free (&set);
}

static void
test_match_text_is_capped (void)
{
  TmRuleSet *set = load_rules ("[rule long]\nbody = /x+/\ntags = x\n");
  g_autofree char *body = g_strnfill (500, 'x');
  TmMessage *msg = mail_with_body (body);
  TmRuleResult result;
  tm_rules_apply (set, msg, NULL, &result);
  const TmRuleMatch *match = g_ptr_array_index (result.matches, 0);
  g_assert_cmpuint (g_utf8_strlen (match->text, -1), ==, 80);
  tm_rule_result_clear (&result);
  tm_message_free (&msg);
  tm_rule_set_free (&set);
}

static void
test_match_all_and_any (void)
{
  TmRuleSet *set = load_rules ("[rule both]\nsubject = refund\nbody = order\ntags = both\n"
                               "[rule either]\nsubject = refund\nbody = order\nmatch = any\ntags = either\n");
  TmMessage *subject_only = mail_with_subject ("refund");
  TmMessage *both = parse_mail ("From: a@example.org\nTo: support@example.com\nSubject: refund\n",
                                "my order\n");
  TmMessage *body_only = mail_with_body ("my order\n");
  TmMessage *neither = mail_with_body ("hello\n");
  g_autofree char *a = apply_names (set, subject_only, NULL);
  g_autofree char *b = apply_names (set, both, NULL);
  g_autofree char *c = apply_names (set, body_only, NULL);
  g_autofree char *d = apply_names (set, neither, NULL);
  g_assert_cmpstr (a, ==, "either");
  g_assert_cmpstr (b, ==, "both;either");
  g_assert_cmpstr (c, ==, "either");
  g_assert_cmpstr (d, ==, "");

  /* The match names the first condition that held. */
  TmRuleResult result;
  tm_rules_apply (set, body_only, NULL, &result);
  const TmRuleMatch *match = g_ptr_array_index (result.matches, 0);
  g_assert_cmpstr (match->field, ==, "body");
  g_assert_cmpstr (match->text, ==, "order");
  tm_rule_result_clear (&result);

  tm_message_free (&subject_only);
  tm_message_free (&both);
  tm_message_free (&body_only);
  tm_message_free (&neither);
  tm_rule_set_free (&set);
}

/* --- actions ------------------------------------------------------------------------- */

static void
test_actions_combine (void)
{
  TmRuleSet *set = load_rules ("[rule a]\nsubject = help\ntags = billing;refund\npriority = high\n"
                               "[rule skipped]\nsubject = nothing-here\ntags = never\nteam = frontline\n"
                               "[rule b]\nsubject = help\ntags = refund;vip;billing\npriority = low\n"
                               "team = billing\ntemplate_language = AR\n"
                               "[rule c]\nsubject = help\npriority = urgent\nteam = logistics\n"
                               "template_language = fa\nautoreply = no\n"
                               "[rule d]\nsubject = help\npriority = normal\nautoreply = no\ntags = last\n");
  TmMessage *msg = mail_with_subject ("help me");
  TmRuleResult result;
  tm_rules_apply (set, msg, NULL, &result);
  g_autofree char *tags = joined_tags (&result);
  g_autofree char *names = matched_rules (&result);
  g_assert_cmpstr (tags, ==, "billing;refund;vip;last");
  g_assert_cmpstr (names, ==, "a;b;c;d");
  g_assert_cmpstr (result.priority, ==, "urgent");
  g_assert_cmpstr (result.team, ==, "billing");
  g_assert_cmpstr (result.template_language, ==, "ar");
  g_assert_true (result.suppress_autoreply);
  g_assert_cmpstr (result.suppressed_by, ==, "c");
  tm_rule_result_clear (&result);
  g_assert_null (result.tags);
  g_assert_null (result.matches);
  tm_rule_result_clear (&result);  /* a cleared result clears again */
  tm_message_free (&msg);
  tm_rule_set_free (&set);
}

static void
test_no_match_leaves_result_empty (void)
{
  TmRuleSet *set = load_rules ("[rule a]\nsubject = refund\ntags = x\npriority = high\nteam = billing\n"
                               "template_language = fa\nautoreply = no\n");
  TmMessage *msg = mail_with_subject ("hello");
  TmRuleResult result;
  tm_rules_apply (set, msg, "fa", &result);
  g_assert_nonnull (result.tags);
  g_assert_null (result.tags[0]);
  g_assert_null (result.priority);
  g_assert_null (result.team);
  g_assert_null (result.template_language);
  g_assert_false (result.suppress_autoreply);
  g_assert_null (result.suppressed_by);
  g_assert_cmpuint (result.matches->len, ==, 0);
  tm_rule_result_clear (&result);
  tm_message_free (&msg);
  tm_rule_set_free (&set);
}

static void
test_stop_ends_evaluation (void)
{
  TmRuleSet *set = load_rules ("[rule newsletter]\nheader.List-Id = /./\nstop = yes\n"
                               "[rule refund]\nsubject = refund\ntags = refund\n");
  TmMessage *list = parse_mail ("From: a@example.org\nTo: support@example.com\nSubject: refund\n"
                                "List-Id: <news.example.org>\n", "x\n");
  TmMessage *plain = mail_with_subject ("refund");
  TmRuleResult result;
  tm_rules_apply (set, list, NULL, &result);
  g_autofree char *a = matched_rules (&result);
  g_assert_cmpstr (a, ==, "newsletter");
  g_assert_null (result.tags[0]);
  tm_rule_result_clear (&result);
  g_autofree char *b = apply_names (set, plain, NULL);
  g_assert_cmpstr (b, ==, "refund");
  tm_message_free (&list);
  tm_message_free (&plain);
  tm_rule_set_free (&set);
}

static void
test_priority_rank (void)
{
  g_assert_cmpint (tm_priority_rank ("low"), ==, 0);
  g_assert_cmpint (tm_priority_rank ("normal"), ==, 1);
  g_assert_cmpint (tm_priority_rank ("high"), ==, 2);
  g_assert_cmpint (tm_priority_rank ("urgent"), ==, 3);
  g_assert_cmpint (tm_priority_rank ("URGENT"), ==, -1);
  g_assert_cmpint (tm_priority_rank (""), ==, -1);
  g_assert_cmpint (tm_priority_rank (NULL), ==, -1);
}

/* --- limits --------------------------------------------------------------------------- */

static void
test_body_limit_256k (void)
{
  TmRuleSet *set = load_rules ("[rule word]\nbody = needle\ntags = w\n"
                               "[rule pattern]\nbody = /needle/\ntags = p\n");
  const gsize limit = 256 * 1024;
  /* Multi-byte filler, so that the cut falls inside a character. */
  GString *early = g_string_new (NULL);
  while (early->len < limit - 100)
    g_string_append (early, "متن ");
  g_string_append (early, " needle\n");
  GString *late = g_string_new (NULL);
  while (late->len < limit + 10)
    g_string_append (late, "متن ");
  g_string_append (late, " needle\n");

  TmMessage *inside = mail_with_body (early->str);
  TmMessage *beyond = mail_with_body (late->str);
  g_assert_cmpuint (strlen (beyond->body_text), >, limit);
  g_autofree char *a = apply_names (set, inside, NULL);
  g_autofree char *b = apply_names (set, beyond, NULL);
  g_assert_cmpstr (a, ==, "word;pattern");
  g_assert_cmpstr (b, ==, "");
  g_string_free (early, TRUE);
  g_string_free (late, TRUE);
  tm_message_free (&inside);
  tm_message_free (&beyond);
  tm_rule_set_free (&set);
}

static void
test_hostile_mail_does_not_crash (void)
{
  TmRuleSet *set = load_rules ("[rule all]\nsubject = x\nbody = /y/\nfrom = z\nto = w\n"
                               "header.X-Junk = v\nattachment = u\nmatch = any\ntags = t\n");
  static const char raw[] = "From: \xff\xfe <\x80@\x81>\nTo: ;;;,,\nSubject: =?bogus?Q?\xc0?=\n"
                            "X-Junk: \x01\x02\xe2\x82\n"
                            "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n"
                            "Content-Type: application/octet-stream; name=\"\xd9\"\n\n\x00\x01\n";
  char *copy = g_malloc (sizeof raw - 1);
  memcpy (copy, raw, sizeof raw - 1);
  TmMessage *msg = tm_message_parse (copy, sizeof raw - 1, NULL);
  g_free (copy);
  TmRuleResult result;
  tm_rules_apply (set, msg, "\xff", &result);
  for (guint i = 0; i < result.matches->len; i++)
    {
      const TmRuleMatch *match = g_ptr_array_index (result.matches, i);
      g_assert_true (g_utf8_validate (match->text, -1, NULL));
    }
  tm_rule_result_clear (&result);
  tm_message_free (&msg);
  tm_rule_set_free (&set);
}

/* --- threads ------------------------------------------------------------------------- */

typedef struct {
  const TmRuleSet *set;
  const TmMessage *message;
} ThreadData;

static gpointer
apply_many (gpointer data)
{
  const ThreadData *thread_data = data;
  for (int i = 0; i < 200; i++)
    {
      TmRuleResult result;
      tm_rules_apply (thread_data->set, thread_data->message, "ar", &result);
      g_assert_cmpuint (result.matches->len, ==, 2);
      g_assert_cmpstr (result.team, ==, "billing");
      tm_rule_result_clear (&result);
    }
  return NULL;
}

static void
test_apply_from_many_threads (void)
{
  TmRuleSet *set = load_rules ("[rule a]\nbody = /فاتور[هة]/;invoice\nteam = billing\n"
                               "[rule b]\nlanguage = ar\nsubject = الفاتورة\ntags = ar\n");
  TmMessage *msg = parse_mail ("From: a@example.org\nTo: support@example.com\n"
                               "Subject: =?UTF-8?B?2KfZhNmB2KfYqtmI2LHYqQ==?=\n"
                               "Content-Type: text/plain; charset=UTF-8\n",
                               "أرسلوا فاتورة الشهر\n");
  ThreadData data = { set, msg };
  GThread *threads[4];
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("rules", apply_many, &data);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_thread_join (threads[i]);
  tm_message_free (&msg);
  tm_rule_set_free (&set);
}

/* --- the example rules file ------------------------------------------------------------ */

typedef struct {
  const char *headers;
  const char *body;
  const char *tags;       /* expected, ';'-joined */
  const char *priority;
  const char *team;
} ExampleCase;

static void
test_contrib_example (void)
{
  const char *dir = g_getenv ("TM_CONTRIB_DIR");
  if (dir == NULL || *dir == '\0')
    {
      g_test_skip ("TM_CONTRIB_DIR is not set");
      return;
    }
  g_autofree char *path = g_build_filename (dir, "rules.conf.example", NULL);
  g_autoptr (GKeyFile) keyfile = g_key_file_new ();
  g_autoptr (GError) error = NULL;
  if (!g_key_file_load_from_file (keyfile, path, G_KEY_FILE_NONE, &error))
    g_error ("%s: %s", path, error->message);
  TmRuleSet *set = tm_rule_set_new ();
  if (!tm_rule_set_add_keyfile (set, keyfile, path, known_team, NULL, &error))
    g_error ("%s", error->message);
  g_assert_cmpuint (tm_rule_set_count (set), ==, 4);

  static const ExampleCase cases[] = {
    { "Subject: URGENT: site down\n", "Please call me.\n", "urgent", "urgent", NULL },
    { "Subject: =?UTF-8?B?2LfZhNioINi52KfYrNmE?=\n",  /* طلب عاجل */
      "مرحبا\n", "urgent", "urgent", NULL },
    { "Subject: Refund please\n", "I was charged twice.\n", "refund;billing", NULL, "billing" },
    { "Subject: question\n", "أريد استرجاع المبلغ من فضلكم\n", "refund;billing", NULL, "billing" },
    { "Subject: مشکل\n", "فاكتور من اشتباه است\n", "billing", NULL, "billing" },
    { "Subject: سؤال\n", "أين الفاتوره الخاصة بطلبي؟\n", "billing", NULL, "billing" },
    { "Subject: Where is my parcel?\n", "Tracking number 123.\n", "delivery", NULL, "logistics" },
    { "Subject: استفسار\n", "الشحنة لم تصل بعد\n", "delivery", NULL, "logistics" },
    { "Subject: فوری: سفارش\n", "بسته من هنوز نرسیده\n", "urgent;delivery", "urgent", "logistics" },
    { "Subject: Thanks\n", "Great service, see you.\n", "", NULL, NULL },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *headers = g_strdup_printf ("From: c@example.org\nTo: support@example.com\n"
                                                  "Content-Type: text/plain; charset=UTF-8\n%s",
                                                  cases[i].headers);
      TmMessage *msg = parse_mail (headers, cases[i].body);
      TmRuleResult result;
      tm_rules_apply (set, msg, NULL, &result);
      g_autofree char *tags = joined_tags (&result);
      g_test_message ("case %u: tags \"%s\"", i, tags);
      g_assert_cmpstr (tags, ==, cases[i].tags);
      g_assert_cmpstr (result.priority, ==, cases[i].priority);
      g_assert_cmpstr (result.team, ==, cases[i].team);
      tm_rule_result_clear (&result);
      tm_message_free (&msg);
    }
  tm_rule_set_free (&set);
}

/* --- the word index and the regex pre-check agree with plain matching ------------ */

static char *
random_pieces (GRand *rand, const char *const *pieces, guint n_pieces, guint min, guint max)
{
  GString *text = g_string_new (NULL);
  guint count = (guint) g_rand_int_range (rand, (gint32) min, (gint32) max + 1);
  for (guint i = 0; i < count; i++)
    g_string_append (text, pieces[g_rand_int_range (rand, 0, (gint32) n_pieces)]);
  return g_string_free (text, FALSE);
}

/* Pieces that meet at word boundaries or across them, in several spellings
 * that normalisation folds together. */
static const char *const text_pieces[] = {
  "a", "b", "ab", "A", "B", " ", " ", " ", "\t", "\n", ".", "-", "1", "\xd9\xa1" /* ١ */,
  "\xd8\xa8" /* ب */, "\xd8\xaa" /* ت */, "\xd8\xa9" /* ة */, "\xd9\x87" /* ه */,
  "\xd9\x8a" /* ي */, "\xdb\x8c" /* ی */, "\xd9\x8e" /* fatha */, "\xd9\x80" /* tatweel */,
  "\xe2\x80\x8c" /* ZWNJ */, "\xc2\xa0" /* NBSP */, "\xc3\xa9" /* é */, "\xc3\x9f" /* ß */,
  "\xef\xbb\xbb" /* lam-alef presentation form */, "\xd9\x84\xd8\xa7" /* لا */,
};

/* The fields of a message, built directly so that any text reaches them. */
typedef struct {
  TmMessage message;
  char *to[4];
} RandomMail;

static void
random_mail_fill (RandomMail *mail, GRand *rand, guint body_pieces)
{
  memset (mail, 0, sizeof *mail);
  mail->message.subject = random_pieces (rand, text_pieces, G_N_ELEMENTS (text_pieces), 0, 8);
  mail->message.body_text = random_pieces (rand, text_pieces, G_N_ELEMENTS (text_pieces), 0, body_pieces);
  mail->message.from_name = random_pieces (rand, text_pieces, G_N_ELEMENTS (text_pieces), 0, 4);
  mail->message.from_address = random_pieces (rand, text_pieces, G_N_ELEMENTS (text_pieces), 0, 4);
  for (guint i = 0; i < 3; i++)
    mail->to[i] = random_pieces (rand, text_pieces, G_N_ELEMENTS (text_pieces), 0, 4);
  mail->message.to = mail->to;
}

static void
random_mail_clear (RandomMail *mail)
{
  g_free (mail->message.subject);
  g_free (mail->message.body_text);
  g_free (mail->message.from_name);
  g_free (mail->message.from_address);
  for (guint i = 0; i < 3; i++)
    g_free (mail->to[i]);
}

/* The values of FIELD as rules.h describes them. */
static GPtrArray *
field_values_of (const RandomMail *mail, const char *field)
{
  GPtrArray *values = g_ptr_array_new ();
  if (strcmp (field, "subject") == 0)
    g_ptr_array_add (values, mail->message.subject);
  else if (strcmp (field, "body") == 0)
    g_ptr_array_add (values, mail->message.body_text);
  else if (strcmp (field, "from") == 0)
    {
      g_ptr_array_add (values, mail->message.from_name);
      g_ptr_array_add (values, mail->message.from_address);
    }
  else
    for (guint i = 0; i < 3; i++)
      g_ptr_array_add (values, mail->to[i]);
  return values;
}

/* Whether the word or phrase WORD (as written in a rule) matches FIELD,
 * found the plain way: normalise each value and scan it. */
static gboolean
plain_word_match (const RandomMail *mail, const char *field, const char *word)
{
  g_autofree char *needle = tm_text_normalize (word, -1, TM_NORMALIZE_DEFAULT);
  g_strstrip (needle);
  g_autoptr (GPtrArray) values = field_values_of (mail, field);
  for (guint i = 0; i < values->len; i++)
    {
      const char *value = g_ptr_array_index (values, i);
      if (value[0] == '\0')
        continue;
      g_autofree char *haystack = tm_text_normalize (value, -1, TM_NORMALIZE_DEFAULT);
      if (tm_text_contains_word (haystack, needle))
        return TRUE;
    }
  return FALSE;
}

static void
test_word_index_agrees_with_plain_search (void)
{
  static const char *const fields[] = { "subject", "body", "from", "to" };
  /* Rule words: the text pieces without line breaks (a key file value is
   * one line), some joined into phrases, some with punctuation inside. */
  static const char *const word_pieces[] = {
    "a", "b", "ab", "A", " ", "\t", ".", "-", "1", "\xd9\xa1", "\xd8\xa8", "\xd8\xaa",
    "\xd8\xa9", "\xd9\x87", "\xd9\x8a", "\xdb\x8c", "\xd9\x8e", "\xd9\x80", "\xe2\x80\x8c",
    "\xc2\xa0", "\xc3\xa9", "\xc3\x9f", "\xef\xbb\xbb", "\xd9\x84\xd8\xa7",
  };
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);
  guint matched = 0, checked = 0;
  for (guint round = 0; round < 60; round++)
    {
      /* 40 rules of one word each, some words shared between rules. */
      GString *text = g_string_new (NULL);
      g_autoptr (GPtrArray) words = g_ptr_array_new_with_free_func (g_free);
      GPtrArray *rule_fields = g_ptr_array_new ();
      while (words->len < 40)
        {
          char *word = words->len > 5 && g_rand_int_range (rand, 0, 5) == 0
                       ? g_strdup (g_ptr_array_index (words, g_rand_int_range (rand, 0, (gint32) words->len)))
                       : random_pieces (rand, word_pieces, G_N_ELEMENTS (word_pieces), 1, 4);
          g_autofree char *normalised = tm_text_normalize (word, -1, TM_NORMALIZE_DEFAULT);
          g_strstrip (normalised);
          g_autofree char *trimmed = g_strstrip (g_strdup (word));
          if (normalised[0] == '\0' || trimmed[0] == '/')
            {
              g_free (word);
              continue;
            }
          const char *field = fields[g_rand_int_range (rand, 0, G_N_ELEMENTS (fields))];
          g_string_append_printf (text, "[rule r%u]\n%s = %s\ntags = t\n", words->len, field, word);
          g_ptr_array_add (words, word);
          g_ptr_array_add (rule_fields, (gpointer) field);
        }
      TmRuleSet *set = load_rules (text->str);
      g_string_free (text, TRUE);
      for (guint m = 0; m < 40; m++)
        {
          RandomMail mail;
          random_mail_fill (&mail, rand, m % 4 == 0 ? 400 : 30);
          GString *expected = g_string_new (NULL);
          for (guint r = 0; r < words->len; r++)
            if (plain_word_match (&mail, g_ptr_array_index (rule_fields, r), g_ptr_array_index (words, r)))
              g_string_append_printf (expected, "%sr%u", expected->len > 0 ? ";" : "", r);
          g_autofree char *names = apply_names (set, &mail.message, NULL);
          if (strcmp (names, expected->str) != 0)
            g_error ("round %u mail %u: rules say \"%s\", plain search \"%s\"", round, m, names,
                     expected->str);
          matched += expected->len > 0;
          checked++;
          g_string_free (expected, TRUE);
          random_mail_clear (&mail);
        }
      g_ptr_array_unref (rule_fields);
      tm_rule_set_free (&set);
    }
  /* Mails with and without matches were both seen. */
  g_assert_cmpuint (matched, >, checked / 10);
  g_assert_cmpuint (matched, <, checked);
}

static void
test_regex_pre_check_agrees_with_plain_regex (void)
{
  static const char *const pattern_pieces[] = {
    "\xd8\xa8", "\xd8\xaa", "\xd9\x87", "\xd8\xa9", "\xd8\xa7", "a", "1", " ", "-", "#",
    "?", "*", "+", "{1,2}", "{2}", "(", ")", "(?:", "|", "[\xd8\xa8\xd9\x87]", "[^a]",
    "\\d", "\\s", "\\b", ".", "\\x{0628}", "\\Q\xd8\xa8|\\E", "^", "$", "(?i)", "\\1",
  };
  static const char *const body_pieces[] = {
    "\xd8\xa8", "\xd8\xaa", "\xd9\x87", "\xd8\xa9", "\xd8\xa7", "a", "A", "1", " ", "-", "#",
    "|", "\xd9\x8e",
  };
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  guint matched = 0, checked = 0;
  for (guint round = 0; round < 3000; round++)
    {
      /* Trimmed first, as the rule's value is. */
      g_autofree char *pattern = random_pieces (rand, pattern_pieces, G_N_ELEMENTS (pattern_pieces), 1, 6);
      g_strstrip (pattern);
      g_autofree char *normalised = tm_text_normalize (pattern, -1, TM_NORMALIZE_KEEP_CASE);
      g_autoptr (GRegex) regex = g_regex_new (normalised, G_REGEX_CASELESS, 0, NULL);
      if (regex == NULL || pattern[0] == '\0' || strchr (pattern, ';') != NULL)
        continue;
      g_autofree char *text = g_strdup_printf ("[rule r]\nbody = /%s/\ntags = t\n", pattern);
      TmRuleSet *set = load_rules (text);
      for (guint m = 0; m < 5; m++)
        {
          g_autofree char *body = random_pieces (rand, body_pieces, G_N_ELEMENTS (body_pieces), 1, 12);
          g_autofree char *value = tm_text_normalize (body, -1, TM_NORMALIZE_KEEP_CASE);
          gboolean expected = g_regex_match (regex, value, 0, NULL);
          TmMessage message = { .subject = (char *) "", .body_text = body };
          g_autofree char *names = apply_names (set, &message, NULL);
          if ((strcmp (names, "r") == 0) != expected)
            {
              g_autofree char *escaped = g_strescape (body, NULL);
              g_error ("/%s/ on \"%s\": rules say %s, the regex %s", pattern, escaped,
                       names[0] != '\0' ? "match" : "no match", expected ? "matches" : "does not");
            }
          matched += expected;
          checked++;
        }
      tm_rule_set_free (&set);
    }
  g_assert_cmpuint (checked, >, 2000);
  g_assert_cmpuint (matched, >, checked / 20);
  g_assert_cmpuint (matched, <, checked);
}

static void
test_regex_pre_check_examples (void)
{
  /* Required text, optional characters, alternatives, classes and escapes
   * that take arguments: each rule must still match where its regex does. */
  TmRuleSet *set = load_rules (
    "[rule number]\nbody = /شماره\\s*\\d+/\ntags = t\n"
    "[rule optional]\nbody = /فاکتورر?/\ntags = t\n"
    "[rule counted]\nbody = /خطا{0,1}ی/\ntags = t\n"
    "[rule either]\nbody = /ثبت|refund/\ntags = t\n"
    "[rule grouped]\nbody = /(ال)?فاتورة/\ntags = t\n"
    "[rule escaped]\nbody = /\\x{0641}اتوره/\ntags = t\n"
    "[rule quoted]\nbody = /\\Qفا|\\Eتوره/\ntags = t\n");
  TmMessage *message = mail_with_body ("شماره 12 فاکتور خطی refund الفاتوره فا|توره\n");
  g_autofree char *names = apply_names (set, message, NULL);
  g_assert_cmpstr (names, ==, "number;optional;counted;either;grouped;escaped;quoted");
  tm_message_free (&message);
  message = mail_with_body ("شمار 12 فاکتو خطر\n");
  g_autofree char *none = apply_names (set, message, NULL);
  g_assert_cmpstr (none, ==, "");
  tm_message_free (&message);
  tm_rule_set_free (&set);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tm_message_library_init ();

  g_test_add_func ("/rules/load/rule-groups-only", test_load_counts_rule_groups_only);
  g_test_add_func ("/rules/load/file-order-across-keyfiles", test_load_rules_in_file_order_across_keyfiles);
  g_test_add_func ("/rules/load/team-callback", test_team_callback_sees_each_team);
  g_test_add_func ("/rules/error/invalid-regex", test_error_invalid_regex);
  g_test_add_func ("/rules/error/unknown-key", test_error_unknown_key);
  g_test_add_func ("/rules/error/unknown-action-value", test_error_unknown_action_value);
  g_test_add_func ("/rules/error/unknown-priority", test_error_unknown_priority);
  g_test_add_func ("/rules/error/unknown-team", test_error_unknown_team);
  g_test_add_func ("/rules/error/no-conditions", test_error_no_conditions);
  g_test_add_func ("/rules/error/no-actions", test_error_no_actions);
  g_test_add_func ("/rules/error/rule-written-twice", test_error_rule_written_twice);
  g_test_add_func ("/rules/error/duplicate-name-across-keyfiles", test_error_duplicate_name_across_keyfiles);
  g_test_add_func ("/rules/error/empty-pattern", test_error_empty_pattern);
  g_test_add_func ("/rules/error/bad-entries", test_error_bad_entries);
  g_test_add_func ("/rules/error/invalid-utf8", test_error_invalid_utf8_value);
  g_test_add_func ("/rules/condition/subject", test_condition_subject);
  g_test_add_func ("/rules/condition/body-normalised", test_condition_body_normalised);
  g_test_add_func ("/rules/condition/from", test_condition_from_name_and_address);
  g_test_add_func ("/rules/condition/to-and-cc", test_condition_to_and_cc);
  g_test_add_func ("/rules/condition/header-every-value", test_condition_header_every_value);
  g_test_add_func ("/rules/condition/attachment", test_condition_attachment);
  g_test_add_func ("/rules/condition/language", test_condition_language);
  g_test_add_func ("/rules/match/regex", test_regex_caseless_on_normalised_text);
  g_test_add_func ("/rules/match/text-capped", test_match_text_is_capped);
  g_test_add_func ("/rules/match/all-and-any", test_match_all_and_any);
  g_test_add_func ("/rules/action/combine", test_actions_combine);
  g_test_add_func ("/rules/action/no-match", test_no_match_leaves_result_empty);
  g_test_add_func ("/rules/action/stop", test_stop_ends_evaluation);
  g_test_add_func ("/rules/action/priority-rank", test_priority_rank);
  g_test_add_func ("/rules/limit/body-256k", test_body_limit_256k);
  g_test_add_func ("/rules/limit/hostile-mail", test_hostile_mail_does_not_crash);
  g_test_add_func ("/rules/threads/apply-concurrently", test_apply_from_many_threads);
  g_test_add_func ("/rules/contrib/example", test_contrib_example);
  g_test_add_func ("/rules/index/agrees-with-plain-search", test_word_index_agrees_with_plain_search);
  g_test_add_func ("/rules/index/regex-pre-check-agrees", test_regex_pre_check_agrees_with_plain_regex);
  g_test_add_func ("/rules/index/regex-pre-check-examples", test_regex_pre_check_examples);
  return g_test_run ();
}
