/* test-pipeline.c - the whole decision for one mail, on a real SQLite store.
 *
 * Each test gets its own database file and a configuration with two queues
 * (support and billing) and a team with one agent. Mails are written inline
 * so that each test shows exactly what arrives.
 */
#include "pipeline.h"

#include <gmime/gmime.h>
#include <glib/gstdio.h>

#include "tm-test.h"
#include <string.h>

typedef TmTestDesk Fixture;

static const char config_text[] =
  "[store]\nbusy_timeout = 1000\n"
  "[milter]\ntrusted_networks = 192.0.2.0/24\n"
  "[queue support]\naddress = support@example.test\ntag_prefix = Ticket\nteam = frontline\n"
  "[queue billing]\naddress = billing@example.test\ntag_prefix = Bill\nlanguage = ar\n"
  "[team frontline]\nmailbox = frontline@example.test\nagents = alice@example.test\n";

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

typedef struct {
  const char *sender;        /* NULL: customer@example.net */
  const char *rcpt;          /* NULL: support@example.test */
  const char *rcpt2;
  const char *auth;
  const char *client;
  gboolean dry_run;
} Envelope;

static TmDecision *
run (Fixture *fixture, const char *raw, const Envelope *given)
{
  static const Envelope defaults = { 0 };
  const Envelope *env = given != NULL ? given : &defaults;
  const char *recipients[] = {
    env->rcpt != NULL ? env->rcpt : "support@example.test", env->rcpt2, NULL,
  };
  TmEnvelope envelope = {
    .sender = env->sender != NULL ? env->sender : "customer@example.net",
    .recipients = recipients,
    .auth_user = env->auth,
    .client_addr = env->client,
    .mta_queue_id = "4XyZ1",
  };
  TmParseOptions options = { .fallback_charsets = (const char *const *) fixture->config->fallback_charsets };
  TmMessage *message = tm_message_parse (raw, strlen (raw), &options);
  g_autoptr (GError) error = NULL;
  TmDecision *decision = tm_pipeline_run (fixture->config, fixture->store, message, &envelope,
                                          1795000000, !env->dry_run, &error);
  g_assert_no_error (error);
  g_assert_nonnull (decision);
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

/* The mails received on a ticket (the acknowledgements it sent are not
 * counted; test-autoreply.c looks at those). */
static guint
count_messages (Fixture *fixture, gint64 ticket_id)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) messages = tm_store_ticket_messages (fixture->store, ticket_id, &error);
  g_assert_no_error (error);
  guint received = 0;
  for (guint i = 0; i < messages->len; i++)
    {
      const TmStoredMessage *message = g_ptr_array_index (messages, i);
      received += strcmp (message->direction, "autoreply") != 0;
    }
  return received;
}

static guint
count_tickets (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) tickets = tm_store_list_tickets (fixture->store, NULL, NULL, 0, &error);
  g_assert_no_error (error);
  return tickets->len;
}

#define FIRST_MAIL \
  "From: Customer <customer@example.net>\r\nTo: support@example.test\r\n" \
  "Subject: Printer on fire\r\nMessage-ID: <first@example.net>\r\n" \
  "Date: Mon, 23 Nov 2026 09:00:00 +0300\r\n\r\nIt is burning.\r\n"

static void
test_new_ticket (Fixture *fixture, gconstpointer data)
{
  TmDecision *decision = run (fixture, FIRST_MAIL, NULL);
  g_assert_cmpint (decision->classification.klass, ==, TM_CLASS_CUSTOMER);
  g_assert_cmpstr (decision->classification.queue->name, ==, "support");
  g_assert_cmpint (decision->ticket_id, ==, 1);
  g_assert_true (decision->ticket_new);
  g_assert_false (decision->duplicate);
  g_assert_cmpstr (decision->status, ==, "new");
  g_assert_cmpstr (decision->priority, ==, "normal");
  g_assert_cmpstr (decision->team, ==, "frontline");
  g_assert_cmpstr (decision->language, ==, "en");
  g_assert_cmpint (decision->threaded_by, ==, TM_THREADED_NONE);
  g_assert_cmpstr (header_of (decision, "X-Ticket-ID"), ==, "1");
  g_assert_cmpstr (header_of (decision, "X-Ticket-Queue"), ==, "support");
  g_assert_cmpstr (decision->subject, ==, "[Ticket#1] Printer on fire");
  g_assert_cmpstr (decision->subject_header, ==, "[Ticket#1] Printer on fire");
  /* Acknowledged (test-autoreply.c has the details). */
  g_assert_true (decision->autoreply_send);
  g_assert_cmpstr (decision->autoreply_reason, ==, "new-ticket");
  g_assert_cmpint (decision->message_row, >, 0);

  g_autoptr (GError) error = NULL;
  g_autoptr (TmTicket) ticket = NULL;
  g_assert_true (tm_store_get_ticket (fixture->store, 1, &ticket, &error));
  g_assert_cmpstr (ticket->customer_address, ==, "customer@example.net");
  g_assert_cmpstr (ticket->customer_name, ==, "Customer");
  g_assert_cmpstr (ticket->subject, ==, "Printer on fire");
  g_assert_cmpint (ticket->created_at, ==, 1795000000);
  g_assert_cmpuint (count_messages (fixture, 1), ==, 1);

  g_autofree char *summary = tm_decision_summary (decision);
  g_assert_nonnull (strstr (summary, "class=customer"));
  g_assert_nonnull (strstr (summary, "ticket=1 new=yes"));
  tm_decision_free (&decision);
  g_assert_null (decision);
}

static void
test_reply_by_subject_tag (Fixture *fixture, gconstpointer data)
{
  TmDecision *first = run (fixture, FIRST_MAIL, NULL);
  tm_decision_free (&first);
  TmDecision *reply = run (fixture,
    "From: customer@example.net\nTo: support@example.test\n"
    "Subject: Re: [Ticket#1] Printer on fire\nMessage-ID: <second@example.net>\n\nStill burning.\n",
    NULL);
  g_assert_cmpint (reply->ticket_id, ==, 1);
  g_assert_false (reply->ticket_new);
  g_assert_cmpint (reply->threaded_by, ==, TM_THREADED_SUBJECT_TAG);
  g_assert_null (reply->subject);       /* the tag is already there, once */
  g_assert_cmpstr (header_of (reply, "X-Ticket-ID"), ==, "1");
  g_assert_cmpuint (count_messages (fixture, 1), ==, 2);
  tm_decision_free (&reply);
}

static void
test_reply_by_headers_without_tag (Fixture *fixture, gconstpointer data)
{
  TmDecision *first = run (fixture, FIRST_MAIL, NULL);
  tm_decision_free (&first);
  TmDecision *by_in_reply_to = run (fixture,
    "From: customer@example.net\nTo: support@example.test\nSubject: Re: Printer on fire\n"
    "Message-ID: <r1@example.net>\nIn-Reply-To: <first@example.net>\n\nmore\n", NULL);
  g_assert_cmpint (by_in_reply_to->ticket_id, ==, 1);
  g_assert_cmpint (by_in_reply_to->threaded_by, ==, TM_THREADED_IN_REPLY_TO);
  g_assert_cmpstr (by_in_reply_to->subject, ==, "[Ticket#1] Re: Printer on fire");
  tm_decision_free (&by_in_reply_to);

  TmDecision *by_references = run (fixture,
    "From: customer@example.net\nTo: support@example.test\nSubject: fwd\n"
    "Message-ID: <r2@example.net>\nIn-Reply-To: <unknown@elsewhere>\n"
    "References: <first@example.net> <unknown@elsewhere>\n\nmore\n", NULL);
  g_assert_cmpint (by_references->ticket_id, ==, 1);
  g_assert_cmpint (by_references->threaded_by, ==, TM_THREADED_REFERENCES);
  tm_decision_free (&by_references);

  /* A Message-ID the desk generated threads too. */
  g_autoptr (GError) error = NULL;
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_remember_message_id (fixture->store, 1, "ack.1@desk.example.test",
                                               "generated", &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  TmDecision *to_our_ack = run (fixture,
    "From: customer@example.net\nTo: support@example.test\nSubject: thanks\n"
    "Message-ID: <r3@example.net>\nIn-Reply-To: <ack.1@desk.example.test>\n\nok\n", NULL);
  g_assert_cmpint (to_our_ack->ticket_id, ==, 1);
  g_assert_cmpint (to_our_ack->threaded_by, ==, TM_THREADED_IN_REPLY_TO);
  tm_decision_free (&to_our_ack);
  g_assert_cmpuint (count_tickets (fixture), ==, 1);
}

static void
test_tag_for_missing_ticket_opens_new (Fixture *fixture, gconstpointer data)
{
  TmDecision *decision = run (fixture,
    "From: customer@example.net\nTo: support@example.test\n"
    "Subject: Re: [Ticket#999] lost\nMessage-ID: <lost@example.net>\n\nhello\n", NULL);
  g_assert_cmpint (decision->ticket_id, ==, 1);
  g_assert_true (decision->ticket_new);
  g_assert_cmpint (decision->ignored_tag, ==, 999);
  g_assert_cmpint (decision->threaded_by, ==, TM_THREADED_NONE);
  g_assert_cmpstr (decision->subject, ==, "[Ticket#1] Re: lost");
  tm_decision_free (&decision);
}

static void
test_tag_of_other_queue_is_not_joined (Fixture *fixture, gconstpointer data)
{
  Envelope to_billing = { .rcpt = "billing@example.test" };
  TmDecision *billing = run (fixture,
    "From: customer@example.net\nTo: billing@example.test\nSubject: invoice\n"
    "Message-ID: <b1@example.net>\n\nwhere is it\n", &to_billing);
  g_assert_cmpint (billing->ticket_id, ==, 1);
  g_assert_cmpstr (billing->subject, ==, "[Bill#1] invoice");
  g_assert_cmpstr (billing->language, ==, "ar");
  tm_decision_free (&billing);

  /* [Ticket#1] names billing's ticket 1 from support's point of view: no join;
   * In-Reply-To naming billing's mail does not cross queues either. */
  TmDecision *stranger = run (fixture,
    "From: mallory@example.org\nTo: support@example.test\nSubject: [Ticket#1] let me in\n"
    "Message-ID: <m1@example.org>\nIn-Reply-To: <b1@example.net>\n\nhi\n", NULL);
  g_assert_cmpint (stranger->ticket_id, ==, 2);
  g_assert_true (stranger->ticket_new);
  g_assert_cmpint (stranger->ignored_tag, ==, 1);
  g_assert_cmpstr (stranger->subject, ==, "[Ticket#2] let me in");
  tm_decision_free (&stranger);
  g_assert_cmpuint (count_messages (fixture, 1), ==, 1);
}

static void
test_duplicate_message_id (Fixture *fixture, gconstpointer data)
{
  TmDecision *first = run (fixture, FIRST_MAIL, NULL);
  TmDecision *again = run (fixture, FIRST_MAIL, NULL);
  g_assert_cmpint (again->ticket_id, ==, first->ticket_id);
  g_assert_true (again->duplicate);
  g_assert_false (again->ticket_new);
  g_assert_cmpint (again->message_row, ==, 0);
  /* A retried mail gets its headers and tag again: the MTA lost the first copy. */
  g_assert_cmpstr (header_of (again, "X-Ticket-ID"), ==, "1");
  g_assert_cmpstr (again->subject, ==, "[Ticket#1] Printer on fire");
  g_assert_cmpuint (count_tickets (fixture), ==, 1);
  g_assert_cmpuint (count_messages (fixture, 1), ==, 1);
  tm_decision_free (&first);
  tm_decision_free (&again);
}

static void
test_duplicate_without_message_id (Fixture *fixture, gconstpointer data)
{
  const char *first_copy =
    "Received: from a by b with ESMTP id AAA; Mon, 23 Nov 2026 09:00:00 +0000\n"
    "From: customer@example.net\nTo: support@example.test\nSubject: no id\n\nbody one\n";
  const char *retried_copy =
    "Received: from a by b with ESMTP id BBB; Mon, 23 Nov 2026 09:05:00 +0000\n"
    "From: customer@example.net\nTo: support@example.test\nSubject: no id\n\nbody one\n";
  const char *other =
    "From: customer@example.net\nTo: support@example.test\nSubject: no id\n\nbody two\n";
  TmDecision *first = run (fixture, first_copy, NULL);
  TmDecision *retry = run (fixture, retried_copy, NULL);
  TmDecision *different = run (fixture, other, NULL);
  g_assert_true (first->ticket_new);
  g_assert_true (retry->duplicate);
  g_assert_cmpint (retry->ticket_id, ==, first->ticket_id);
  g_assert_true (different->ticket_new);
  g_assert_cmpint (different->ticket_id, !=, first->ticket_id);
  g_assert_cmpuint (count_tickets (fixture), ==, 2);
  tm_decision_free (&first);
  tm_decision_free (&retry);
  tm_decision_free (&different);
}

static void
test_dry_run_writes_nothing (Fixture *fixture, gconstpointer data)
{
  Envelope dry = { .dry_run = TRUE };
  TmDecision *first = run (fixture, FIRST_MAIL, &dry);
  TmDecision *second = run (fixture, FIRST_MAIL, &dry);
  g_assert_cmpint (first->ticket_id, ==, 1);
  g_assert_true (first->ticket_new);
  g_assert_cmpint (second->ticket_id, ==, 1);
  g_assert_true (second->ticket_new);
  g_assert_cmpint (first->message_row, ==, 0);
  g_assert_cmpuint (count_tickets (fixture), ==, 0);
  tm_decision_free (&first);
  tm_decision_free (&second);
}

static void
test_not_support_touches_nothing (Fixture *fixture, gconstpointer data)
{
  Envelope elsewhere = { .rcpt = "sales@example.test" };
  TmDecision *decision = run (fixture, FIRST_MAIL, &elsewhere);
  g_assert_cmpint (decision->classification.klass, ==, TM_CLASS_NOT_SUPPORT);
  g_assert_null (decision->classification.queue);
  g_assert_cmpint (decision->ticket_id, ==, 0);
  g_assert_cmpuint (decision->headers->len, ==, 0);
  g_assert_null (decision->subject);
  g_assert_cmpuint (count_tickets (fixture), ==, 0);
  tm_decision_free (&decision);
}

static void
test_mixed_case_and_second_recipient (Fixture *fixture, gconstpointer data)
{
  Envelope mixed = { .rcpt = "sales@example.test", .rcpt2 = "<Support@Example.TEST>" };
  TmDecision *decision = run (fixture, FIRST_MAIL, &mixed);
  g_assert_cmpint (decision->classification.klass, ==, TM_CLASS_CUSTOMER);
  g_assert_cmpstr (decision->classification.queue->name, ==, "support");
  g_assert_cmpint (decision->ticket_id, ==, 1);
  tm_decision_free (&decision);

  /* Two queues: the first one in envelope order takes the mail, once. */
  Envelope both = { .rcpt = "billing@example.test", .rcpt2 = "support@example.test" };
  TmDecision *two = run (fixture,
    "From: c@example.net\nSubject: both\nMessage-ID: <both@example.net>\n\nx\n", &both);
  g_assert_cmpstr (two->classification.queue->name, ==, "billing");
  g_assert_cmpuint (count_tickets (fixture), ==, 2);
  tm_decision_free (&two);
}

static void
test_loop_makes_no_ticket (Fixture *fixture, gconstpointer data)
{
  TmDecision *decision = run (fixture,
    "From: support@example.test\nTo: support@example.test\nX-Loop: support@example.test\n"
    "Auto-Submitted: auto-replied\nSubject: [Ticket#1] we got your mail\n\nthanks\n", NULL);
  g_assert_cmpint (decision->classification.klass, ==, TM_CLASS_LOOP);
  g_assert_cmpint (decision->ticket_id, ==, 0);
  g_assert_cmpuint (count_tickets (fixture), ==, 0);
  g_assert_false (decision->autoreply_send);
  tm_decision_free (&decision);
}

static void
test_automated_mail (Fixture *fixture, gconstpointer data)
{
  struct { const char *headers; const char *sender; const char *reason; } cases[] = {
    { "Subject: bounce\n", "", "null-sender" },
    { "Subject: bounce\n", "<>", "null-sender" },
    { "Subject: hi\n", "MAILER-DAEMON@example.net", "mailer-daemon" },
    { "Subject: away\nAuto-Submitted: auto-replied\n", NULL, "auto-submitted" },
    { "Subject: away\nAuto-Submitted: Auto-Generated (cron)\n", NULL, "auto-submitted" },
    { "Subject: news\nPrecedence: Bulk\n", NULL, "precedence" },
    { "Subject: news\nPrecedence: junk\n", NULL, "precedence" },
    { "Subject: list\nList-Id: <users.lists.example.net>\n", NULL, "list" },
    { "Subject: list\nList-Unsubscribe: <mailto:u@example.net>\n", NULL, "list" },
    { "Subject: dsn\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\n",
      NULL, "delivery-report" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *raw = g_strdup_printf ("From: someone@example.net\nTo: support@example.test\n"
                                              "Message-ID: <auto%zu@example.net>\n%s\nbody\n",
                                              i, cases[i].headers);
      Envelope envelope = { .sender = cases[i].sender };
      TmDecision *decision = run (fixture, raw, &envelope);
      g_assert_cmpint (decision->classification.klass, ==, TM_CLASS_AUTOMATED);
      g_assert_cmpstr (decision->classification.reason, ==, cases[i].reason);
      g_assert_cmpint (decision->ticket_id, >, 0);      /* nothing is lost */
      g_assert_false (decision->autoreply_send);
      tm_decision_free (&decision);
    }
  /* Auto-Submitted: no is a person. */
  TmDecision *person = run (fixture, "From: p@example.net\nAuto-Submitted: no\nSubject: hi\n\nx\n", NULL);
  g_assert_cmpint (person->classification.klass, ==, TM_CLASS_CUSTOMER);
  tm_decision_free (&person);
}

static void
test_agent_needs_proof (Fixture *fixture, gconstpointer data)
{
  /* Three different mails (each its own Message-ID), so none is a retry of another. */
  const char *raw = "From: Alice <ALICE@example.test>\nTo: support@example.test\n"
                    "Message-ID: <agent-1@example.test>\nSubject: Re: [Ticket#1] x\n\nanswer\n";
  Envelope forged = { .sender = "alice@example.test", .client = "203.0.113.9" };
  TmDecision *decision = run (fixture, raw, &forged);
  g_assert_cmpint (decision->classification.klass, ==, TM_CLASS_CUSTOMER);
  g_assert_cmpstr (decision->classification.reason, ==, "unauthenticated-agent-address");
  tm_decision_free (&decision);

  raw = "From: Alice <ALICE@example.test>\nTo: support@example.test\n"
        "Message-ID: <agent-2@example.test>\nSubject: Re: [Ticket#1] x\n\nanswer\n";
  Envelope authenticated = { .sender = "alice@example.test", .auth = "alice" };
  decision = run (fixture, raw, &authenticated);
  g_assert_cmpint (decision->classification.klass, ==, TM_CLASS_AGENT);
  g_assert_cmpstr (decision->classification.reason, ==, "authenticated-agent");
  g_assert_cmpint (decision->ticket_id, ==, 1);
  g_assert_cmpint (decision->threaded_by, ==, TM_THREADED_SUBJECT_TAG);
  g_assert_cmpstr (decision->status, ==, "open");     /* an agent answered */
  tm_decision_free (&decision);

  raw = "From: Alice <ALICE@example.test>\nTo: support@example.test\n"
        "Message-ID: <agent-3@example.test>\nSubject: Re: [Ticket#1] x\n\nanswer\n";
  Envelope trusted = { .sender = "alice@example.test", .client = "192.0.2.25" };
  decision = run (fixture, raw, &trusted);
  g_assert_cmpint (decision->classification.klass, ==, TM_CLASS_AGENT);
  g_assert_cmpstr (decision->classification.reason, ==, "trusted-network-agent");
  tm_decision_free (&decision);
}

static void
test_customer_reopens_resolved_ticket (Fixture *fixture, gconstpointer data)
{
  TmDecision *first = run (fixture, FIRST_MAIL, NULL);
  tm_decision_free (&first);
  g_autoptr (GError) error = NULL;
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_touch_ticket (fixture->store, 1, 1795000100, "resolved", &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  TmDecision *again = run (fixture,
    "From: customer@example.net\nSubject: Re: [Ticket#1] Printer on fire\n"
    "Message-ID: <again@example.net>\n\nIt is burning again.\n", NULL);
  g_assert_cmpstr (again->status, ==, "open");
  tm_decision_free (&again);
  g_autoptr (TmTicket) ticket = NULL;
  g_assert_true (tm_store_get_ticket (fixture->store, 1, &ticket, &error));
  g_assert_cmpstr (ticket->status, ==, "open");
}

static void
test_forged_ticket_header_is_ignored (Fixture *fixture, gconstpointer data)
{
  TmDecision *first = run (fixture, FIRST_MAIL, NULL);
  tm_decision_free (&first);
  TmDecision *forged = run (fixture,
    "From: mallory@example.org\nTo: support@example.test\nX-Ticket-ID: 1\n"
    "X-Ticket-Queue: support\nSubject: give me ticket one\nMessage-ID: <f@example.org>\n\nx\n", NULL);
  g_assert_cmpint (forged->ticket_id, ==, 2);
  g_assert_true (forged->ticket_new);
  g_assert_cmpstr (header_of (forged, "X-Ticket-ID"), ==, "2");
  tm_decision_free (&forged);
}

static void
test_non_ascii_subject_is_encoded (Fixture *fixture, gconstpointer data)
{
  TmDecision *decision = run (fixture,
    "From: customer@example.net\nTo: support@example.test\n"
    "Subject: =?UTF-8?B?2YHYp9iq2YjYsdipINmE2YUg2KrYtdmE?=\n"
    "Message-ID: <ar@example.net>\n\nx\n", NULL);
  g_assert_cmpstr (decision->subject, ==, "[Ticket#1] فاتورة لم تصل");
  g_assert_nonnull (decision->subject_header);
  for (const char *c = decision->subject_header; *c != '\0'; c++)
    g_assert_true ((guchar) *c < 0x80 && *c != '\n' && *c != '\r');
  g_autofree char *decoded = g_mime_utils_header_decode_text (NULL, decision->subject_header);
  g_assert_cmpstr (decoded, ==, decision->subject);
  tm_decision_free (&decision);
}

static void
test_truncated_mail_is_noted (Fixture *fixture, gconstpointer data)
{
  const char *raw = "From: customer@example.net\nSubject: big\nMessage-ID: <big@example.net>\n\nstart of";
  const char *recipients[] = { "support@example.test", NULL };
  TmEnvelope envelope = { .sender = "customer@example.net", .recipients = recipients };
  TmParseOptions options = { .truncated = TRUE, .original_size = 31457280 };
  TmMessage *message = tm_message_parse (raw, strlen (raw), &options);
  g_autoptr (GError) error = NULL;
  TmDecision *decision = tm_pipeline_run (fixture->config, fixture->store, message, &envelope,
                                          1795000000, TRUE, &error);
  g_assert_no_error (error);
  g_assert_true (decision->truncated);
  g_autoptr (GPtrArray) messages = tm_store_ticket_messages (fixture->store, decision->ticket_id, &error);
  const TmStoredMessage *stored = g_ptr_array_index (messages, 0);
  g_assert_true (stored->truncated);
  g_assert_cmpuint (stored->size, ==, 31457280);
  tm_decision_free (&decision);
  tm_message_free (&message);
}

static void
test_store_failure_is_reported (Fixture *fixture, gconstpointer data)
{
  /* Another writer holds the database: the pipeline must fail, not wait
   * forever and not half-write; the next mail after the lock goes works. */
  g_autofree char *db = g_build_filename (fixture->directory, "tickets.db", NULL);
  TmStoreOptions options = { .busy_timeout_ms = 50, .create = FALSE };
  g_autoptr (GError) error = NULL;
  TmStore *blocker = tm_store_open (db, &options, &error);
  g_assert_no_error (error);
  tm_store_close (&fixture->store);
  fixture->store = tm_store_open (db, &options, &error);
  g_assert_no_error (error);
  g_assert_true (tm_store_begin (blocker, &error));

  const char *recipients[] = { "support@example.test", NULL };
  TmEnvelope envelope = { .sender = "c@example.net", .recipients = recipients };
  TmMessage *message = tm_message_parse (FIRST_MAIL, strlen (FIRST_MAIL), NULL);
  TmDecision *decision = tm_pipeline_run (fixture->config, fixture->store, message, &envelope,
                                          1795000000, TRUE, &error);
  g_assert_null (decision);
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_BUSY);
  g_clear_error (&error);

  tm_store_rollback (blocker);
  tm_store_close (&blocker);
  decision = tm_pipeline_run (fixture->config, fixture->store, message, &envelope,
                              1795000000, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (decision->ticket_id, ==, 1);
  tm_decision_free (&decision);
  tm_message_free (&message);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tm_message_library_init ();
#define ADD(path, function) \
  g_test_add (path, Fixture, NULL, fixture_set_up, function, fixture_tear_down)
  ADD ("/pipeline/new-ticket", test_new_ticket);
  ADD ("/pipeline/thread/subject-tag", test_reply_by_subject_tag);
  ADD ("/pipeline/thread/headers-without-tag", test_reply_by_headers_without_tag);
  ADD ("/pipeline/thread/tag-for-missing-ticket", test_tag_for_missing_ticket_opens_new);
  ADD ("/pipeline/thread/tag-of-other-queue", test_tag_of_other_queue_is_not_joined);
  ADD ("/pipeline/idempotent/message-id", test_duplicate_message_id);
  ADD ("/pipeline/idempotent/content-hash", test_duplicate_without_message_id);
  ADD ("/pipeline/dry-run-writes-nothing", test_dry_run_writes_nothing);
  ADD ("/pipeline/class/not-support", test_not_support_touches_nothing);
  ADD ("/pipeline/class/mixed-case-recipient", test_mixed_case_and_second_recipient);
  ADD ("/pipeline/class/loop", test_loop_makes_no_ticket);
  ADD ("/pipeline/class/automated", test_automated_mail);
  ADD ("/pipeline/class/agent-needs-proof", test_agent_needs_proof);
  ADD ("/pipeline/status/customer-reopens", test_customer_reopens_resolved_ticket);
  ADD ("/pipeline/forged-ticket-header", test_forged_ticket_header_is_ignored);
  ADD ("/pipeline/subject/non-ascii-encoded", test_non_ascii_subject_is_encoded);
  ADD ("/pipeline/truncated-mail-noted", test_truncated_mail_is_noted);
  ADD ("/pipeline/store-busy-then-recovers", test_store_failure_is_reported);
#undef ADD
  return g_test_run ();
}
