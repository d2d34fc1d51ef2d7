/* test-routing.c - rules on a new ticket, routing to a team's mailbox,
 * Reply-To, X-Ticket-Customer and contact forms, through the real pipeline. */
#include "pipeline.h"

#include <glib/gstdio.h>
#include <gmime/gmime.h>
#include <string.h>

#include "tm-test.h"

#define NOW G_GINT64_CONSTANT (1795000000)

typedef TmTestDesk Fixture;

static const char config_text[] =
  "[queue support]\naddress = support@example.test;help@example.test\nteam = frontline\n"
  "form_senders = noreply@web.example.test\n"
  "[queue sales]\naddress = sales@example.test\nteam = frontline\nkeep_address = yes\n"
  "[queue plain]\naddress = plain@example.test\n"
  "[team frontline]\nmailbox = frontline@example.test\n"
  "[team billing]\nmailbox = billing-team@example.test\n"
  "[rule urgent]\nsubject = urgent;عاجل;فوری\npriority = urgent\ntags = urgent\n"
  "[rule billing]\nsubject = فاتورة;invoice;/re(fund|turn)s?/\nbody = فاکتور\n"
  "match = any\ntags = billing\npriority = high\nteam = billing\n"
  "[rule persian]\nsubject = کارت\ntemplate_language = fa\ntags = card\n"
  "[rule newsletter]\nheader.X-Mailer = MassMailer\nautoreply = no\nstop = yes\n"
  "[rule never]\nheader.X-Mailer = MassMailer\ntags = never-reached\n";

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  tm_test_desk_open (fixture, config_text);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  tm_test_desk_close (fixture);
}

static TmDecision *
run (Fixture *fixture, const char *sender, const char *rcpt, const char *raw)
{
  const char *recipients[] = { rcpt, NULL };
  TmEnvelope envelope = { .sender = sender, .recipients = recipients, .mta_queue_id = "4R" };
  TmParseOptions options = { 0 };
  TmMessage *message = tm_message_parse (raw, strlen (raw), &options);
  g_autoptr (GError) error = NULL;
  TmDecision *decision = tm_pipeline_run (fixture->config, fixture->store, message, &envelope,
                                          NOW, TRUE, &error);
  g_assert_no_error (error);
  tm_message_free (&message);
  return decision;
}

static const char *
header_of (const TmDecision *decision, const char *name)
{
  for (guint i = 0; i < decision->headers->len; i++)
    {
      const TmHeaderChange *change = g_ptr_array_index (decision->headers, i);
      if (strcmp (change->name, name) == 0)
        return change->value;
    }
  return NULL;
}

static char *
joined (GPtrArray *array)
{
  g_ptr_array_add (array, NULL);
  char *text = g_strjoinv (",", (char **) array->pdata);
  g_ptr_array_remove_index (array, array->len - 1);
  return text;
}

static void
test_rule_routes_to_team (Fixture *fixture, gconstpointer data)
{
  /* فاتوره (heh) matches the rule's فاتورة (teh marbuta). */
  TmDecision *decision = run (fixture, "c@example.net", "Support@Example.TEST",
    "From: c@example.net\r\nTo: support@example.test\r\nMessage-ID: <r1@example.net>\r\n"
    "Subject: =?UTF-8?B?2YHYp9iq2YjYsdmHINiu2KfYt9im2Kk=?=\r\n\r\nx\r\n");
  g_assert_cmpstr (decision->team, ==, "billing");
  g_assert_cmpstr (decision->priority, ==, "high");
  g_assert_cmpstr (decision->tags[0], ==, "billing");
  g_autofree char *added = joined (decision->recipients_add);
  g_autofree char *removed = joined (decision->recipients_remove);
  g_assert_cmpstr (added, ==, "billing-team@example.test");
  g_assert_cmpstr (removed, ==, "support@example.test");
  g_assert_cmpstr (decision->reply_to, ==, "support@example.test");
  g_assert_cmpstr (header_of (decision, "X-Ticket-Team"), ==, "billing");
  g_assert_cmpstr (header_of (decision, "X-Ticket-Priority"), ==, "high");
  g_assert_cmpstr (header_of (decision, "X-Ticket-Tags"), ==, "billing");
  g_assert_cmpstr (header_of (decision, "X-Ticket-Customer"), ==,
                   "c@example.net; open=0; total=0; last=0");
  g_assert_cmpuint (decision->rules.matches->len, ==, 1);
  gint64 first = decision->ticket_id;
  tm_decision_free (&decision);

  /* A follow-up goes to the ticket's team; the customer now has history. */
  g_autofree char *reply = g_strdup_printf (
    "From: c@example.net\r\nTo: support@example.test\r\nMessage-ID: <r2@example.net>\r\n"
    "Subject: Re: [Ticket#%" G_GINT64_FORMAT "] x\r\n\r\nmore\r\n", first);
  decision = run (fixture, "c@example.net", "support@example.test", reply);
  g_assert_false (decision->ticket_new);
  g_assert_cmpstr (decision->team, ==, "billing");
  g_autofree char *added2 = joined (decision->recipients_add);
  g_assert_cmpstr (added2, ==, "billing-team@example.test");
  tm_decision_free (&decision);

  decision = run (fixture, "c@example.net", "support@example.test",
    "From: c@example.net\r\nTo: support@example.test\r\nMessage-ID: <r3@example.net>\r\n"
    "Subject: URGENT: printer\r\n\r\nx\r\n");
  g_assert_cmpstr (decision->team, ==, "frontline");
  g_assert_cmpstr (decision->priority, ==, "urgent");
  g_autofree char *customer = g_strdup_printf ("c@example.net; open=1; total=1; last=%"
                                               G_GINT64_FORMAT, first);
  g_assert_cmpstr (header_of (decision, "X-Ticket-Customer"), ==, customer);
  tm_decision_free (&decision);
}

static void
test_highest_priority_and_regex (Fixture *fixture, gconstpointer data)
{
  TmDecision *decision = run (fixture, "d@example.net", "support@example.test",
    "From: d@example.net\r\nMessage-ID: <p1@example.net>\r\nSubject: Urgent: two Refunds missing\r\n\r\nx\r\n");
  g_assert_cmpstr (decision->priority, ==, "urgent");
  g_assert_cmpstr (decision->team, ==, "billing");
  g_assert_cmpstr (decision->tags[0], ==, "urgent");
  g_assert_cmpstr (decision->tags[1], ==, "billing");
  g_assert_null (decision->tags[2]);
  tm_decision_free (&decision);
}

static void
test_keep_address_and_no_team (Fixture *fixture, gconstpointer data)
{
  TmDecision *decision = run (fixture, "e@example.net", "sales@example.test",
    "From: e@example.net\r\nMessage-ID: <k1@example.net>\r\nSubject: quote\r\n\r\nx\r\n");
  g_assert_cmpuint (decision->recipients_remove->len, ==, 0);
  g_autofree char *added = joined (decision->recipients_add);
  g_assert_cmpstr (added, ==, "frontline@example.test");
  tm_decision_free (&decision);

  decision = run (fixture, "e@example.net", "plain@example.test",
    "From: e@example.net\r\nMessage-ID: <k2@example.net>\r\nSubject: hello\r\n\r\nx\r\n");
  g_assert_null (decision->team);
  g_assert_cmpuint (decision->recipients_add->len, ==, 0);
  g_assert_cmpuint (decision->recipients_remove->len, ==, 0);
  g_assert_null (decision->reply_to);
  g_assert_null (header_of (decision, "X-Ticket-Team"));
  tm_decision_free (&decision);
}

static void
test_rule_language_and_suppression (Fixture *fixture, gconstpointer data)
{
  /* An English body but a Persian card rule: the answer is in Persian. */
  TmDecision *decision = run (fixture, "f@example.net", "support@example.test",
    "From: f@example.net\r\nMessage-ID: <l1@example.net>\r\n"
    "Subject: =?UTF-8?B?2qnYp9ix2Ko=?= problem\r\n\r\nmy card does not work, please help me today\r\n");
  g_assert_cmpstr (decision->language, ==, "fa");
  g_assert_cmpstr (decision->language_source, ==, "rule");
  g_assert_cmpstr (decision->autoreply_language, ==, "fa");
  tm_decision_free (&decision);

  decision = run (fixture, "g@example.net", "support@example.test",
    "From: g@example.net\r\nMessage-ID: <n1@example.net>\r\nX-Mailer: MassMailer 2.0\r\n"
    "Subject: our news\r\n\r\nx\r\n");
  g_assert_false (decision->autoreply_send);
  g_assert_cmpstr (decision->autoreply_reason, ==, "rule:newsletter");
  /* stop = yes: the rule after it was not looked at. */
  g_assert_null (decision->tags[0]);
  tm_decision_free (&decision);
}

static void
test_contact_form (Fixture *fixture, gconstpointer data)
{
  TmDecision *decision = run (fixture, "noreply@web.example.test", "support@example.test",
    "From: Website <noreply@web.example.test>\r\nReply-To: Real Customer <real@example.org>\r\n"
    "Message-ID: <form1@web.example.test>\r\nSubject: Contact form: order 12\r\n\r\nwhere is it\r\n");
  g_assert_true (decision->via_form);
  g_assert_cmpstr (decision->customer_address, ==, "real@example.org");
  /* noreply@ is the form, not the customer: the customer is answered. */
  g_assert_true (decision->autoreply_send);
  g_autoptr (GError) error = NULL;
  g_autoptr (TmTicket) ticket = NULL;
  g_assert_true (tm_store_get_ticket (fixture->store, decision->ticket_id, &ticket, &error));
  g_assert_cmpstr (ticket->customer_address, ==, "real@example.org");
  g_autoptr (GPtrArray) mails = tm_store_outbox_list (fixture->store, NULL, 0, &error);
  g_assert_cmpuint (mails->len, ==, 1);
  g_assert_cmpstr (((TmOutboxMail *) g_ptr_array_index (mails, 0))->recipient, ==,
                   "real@example.org");
  tm_decision_free (&decision);

  /* The same robot address on a queue that does not list it: no answer. */
  decision = run (fixture, "noreply@web.example.test", "plain@example.test",
    "From: Website <noreply@web.example.test>\r\nReply-To: real@example.org\r\n"
    "Message-ID: <form2@web.example.test>\r\nSubject: Contact form\r\n\r\nx\r\n");
  g_assert_false (decision->via_form);
  g_assert_cmpstr (decision->autoreply_reason, ==, "no-reply-sender");
  tm_decision_free (&decision);
}

/* A robot with hundreds of tickets: the counts stop at the limit, with "+". */
static void
test_customer_history_is_bounded (Fixture *fixture, gconstpointer data)
{
  TmDecision *decision = NULL;
  for (int i = 0; i <= TM_CUSTOMER_HISTORY_LIMIT + 1; i++)
    {
      tm_decision_free (&decision);
      g_autofree char *raw = g_strdup_printf ("From: r@example.net\r\nMessage-ID: <h%d@example.net>\r\n"
                                              "Subject: alert %d\r\n\r\nx\r\n", i, i);
      decision = run (fixture, "r@example.net", "plain@example.test", raw);
    }
  g_autofree char *expected = g_strdup_printf ("r@example.net; open=%d+; total=%d+; last=%" G_GINT64_FORMAT,
                                               TM_CUSTOMER_HISTORY_LIMIT, TM_CUSTOMER_HISTORY_LIMIT,
                                               decision->ticket_id - 1);
  g_assert_cmpstr (header_of (decision, "X-Ticket-Customer"), ==, expected);
  tm_decision_free (&decision);
}

/* A customer address with UTF-8 in it (SMTPUTF8) reaches X-Ticket-Customer
 * as RFC 2047 encoded words, like X-Ticket-Tags: the headers the milter
 * adds are ASCII (found by fuzz-pipeline). It decodes back to the address. */
static void
test_customer_header_is_ascii (Fixture *fixture, gconstpointer data)
{
  static const char *const addresses[] = {
    "\xd8\xb9\xd9\x84\xd9\x8a@example.net",      /* an Arabic local part */
    "=?utf-8?q?a=0D=0A?=@example.net",               /* looks like an encoded word */
  };
  for (guint i = 0; i < G_N_ELEMENTS (addresses); i++)
    {
      g_autofree char *raw = g_strdup_printf ("From: %s\r\nMessage-ID: <u%u@example.net>\r\n"
                                              "Subject: hello\r\n\r\nx\r\n", addresses[i], i);
      TmDecision *decision = run (fixture, addresses[i], "plain@example.test", raw);
      const char *value = header_of (decision, "X-Ticket-Customer");
      g_assert_nonnull (value);
      for (const char *c = value; *c != '\0'; c++)
        if ((guchar) *c < 0x20 || (guchar) *c >= 0x7f)
          g_error ("X-Ticket-Customer \"%s\" is not one line of ASCII", value);
      g_assert_true (g_str_has_prefix (value, "=?"));
      g_autofree char *decoded = g_mime_utils_header_decode_text (NULL, value);
      g_autofree char *expected = g_strdup_printf ("%s; open=0; total=0; last=0",
                                                   decision->customer_address);
      g_assert_cmpstr (decoded, ==, expected);
      tm_decision_free (&decision);
    }
}

static void
test_bad_rules_stop_loading (void)
{
  static const struct { const char *text; const char *fragment; } cases[] = {
    { "[rule broken]\nsubject = /(unclosed/\ntags = x\n", "[rule broken] subject" },
    { "[rule lost]\nsubject = x\nteam = nowhere\n", "[rule lost] team" },
    { "[rule odd]\nsubjekt = x\ntags = y\n", "[rule odd] subjekt" },
    { "[rule lazy]\nsubject = x\n", "[rule lazy]" },
    { "[rule loud]\nsubject = x\npriority = extreme\n", "[rule loud] priority" },
    { "[rules]\nfile = /nonexistent/rules.conf\n", "[rules] file" },
  };
  g_autofree char *directory = g_dir_make_tmp ("tm-rules-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (directory, "c.conf", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = tm_test_config_text (cases[i].text);
      g_assert_true (g_file_set_contents (path, text, -1, NULL));
      g_autoptr (GError) error = NULL;
      TmConfig *config = tm_config_load (path, TRUE, &error);
      g_assert_null (config);
      if (strstr (error->message, cases[i].fragment) == NULL)
        g_error ("\"%s\" does not mention \"%s\"", error->message, cases[i].fragment);
    }
  /* A rules file of its own, read after the main file. */
  g_autofree char *rules = g_build_filename (directory, "rules.conf", NULL);
  g_assert_true (g_file_set_contents (rules, "[rule extra]\nsubject = x\ntags = extra\n", -1, NULL));
  g_autofree char *main_text = g_strdup_printf ("[rules]\nfile = %s\n[rule first]\nsubject = y\ntags = f\n",
                                                rules);
  g_autofree char *text = tm_test_config_text (main_text);
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  g_autoptr (GError) error = NULL;
  TmConfig *config = tm_config_load (path, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (tm_rule_set_count (config->rules), ==, 2);
  tm_config_free (&config);
  tm_test_remove_directory (directory);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tm_message_library_init ();
#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/routing/rule-routes-to-team-and-follow-ups-follow", test_rule_routes_to_team);
  ADD ("/routing/highest-priority-and-regex", test_highest_priority_and_regex);
  ADD ("/routing/keep-address-and-no-team", test_keep_address_and_no_team);
  ADD ("/routing/rule-language-and-suppression", test_rule_language_and_suppression);
  ADD ("/routing/contact-form-customer-from-reply-to", test_contact_form);
  ADD ("/routing/customer-history-is-bounded", test_customer_history_is_bounded);
  ADD ("/routing/customer-header-is-ascii", test_customer_header_is_ascii);
  g_test_add_func ("/routing/bad-rules-stop-loading", test_bad_rules_stop_loading);
  return g_test_run ();
}
