/* test-autoreply.c - which mails get an acknowledgement, in which language
 * and template, and what lands in the outbox: through the real pipeline on
 * a real SQLite store, with the shipped templates.
 *
 * The clock is fixed: 1795000000 is Thursday 2026-11-19 10:13 UTC, 13:13 in
 * Riyadh (inside Sunday-Thursday 09:00-17:00).
 */
#include "autoreply.h"
#include "pipeline.h"

#include <gmime/gmime.h>
#include <glib/gstdio.h>
#include <string.h>

#include "tm-test.h"

#define NOW G_GINT64_CONSTANT (1795000000)

typedef TmTestDesk Fixture;

static const char config_text[] =
  "[queue support]\naddress = support@example.test\ndisplay_name = Example Support\n"
  "first_response = 4h\n"
  "[queue billing]\naddress = billing@example.test\ntag_prefix = Bill\nlanguage = ar\n"
  "hours = riyadh\nack_followups = yes\nack_rate_limit = 0\n"
  "[queue quiet]\naddress = quiet@example.test\nack = no\n"
  "[team frontline]\nmailbox = frontline@example.test\nagents = alice@example.test\n"
  "[hours riyadh]\ntimezone = Asia/Riyadh\ndays = sun-thu\nopen = 09:00-17:00\n"
  "holidays = 2026-12-02\n";

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
run_full (Fixture *fixture, const char *raw, const char *sender, const char *rcpt, gint64 now,
          gboolean commit)
{
  const char *recipients[] = { rcpt != NULL ? rcpt : "support@example.test", NULL };
  TmEnvelope envelope = {
    .sender = sender != NULL ? sender : "customer@example.net",
    .recipients = recipients,
    .client_addr = "203.0.113.9",
    .mta_queue_id = "4Ack1",
  };
  TmParseOptions options = { 0 };
  TmMessage *message = tm_message_parse (raw, strlen (raw), &options);
  g_autoptr (GError) error = NULL;
  TmDecision *decision = tm_pipeline_run (fixture->config, fixture->store, message, &envelope,
                                          now, commit, &error);
  g_assert_no_error (error);
  g_assert_nonnull (decision);
  tm_message_free (&message);
  return decision;
}

static TmDecision *
run (Fixture *fixture, const char *raw)
{
  return run_full (fixture, raw, NULL, NULL, NOW, TRUE);
}

static GPtrArray *
outbox (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  GPtrArray *mails = tm_store_outbox_list (fixture->store, NULL, 0, &error);
  g_assert_no_error (error);
  return mails;
}

/* The newest outbox mail, parsed back. */
static GMimeMessage *
parse_newest (Fixture *fixture, TmOutboxMail **mail_out)
{
  GPtrArray *mails = outbox (fixture);
  g_assert_cmpuint (mails->len, >, 0);
  TmOutboxMail *mail = g_ptr_array_steal_index (mails, 0);
  g_ptr_array_unref (mails);
  GMimeStream *stream = g_mime_stream_mem_new_with_buffer (mail->data, mail->length);
  GMimeParser *parser = g_mime_parser_new_with_stream (stream);
  GMimeMessage *message = g_mime_parser_construct_message (parser, NULL);
  g_object_unref (parser);
  g_object_unref (stream);
  g_assert_nonnull (message);
  *mail_out = mail;
  return message;
}

static char *
body_of (GMimeMessage *message)
{
  GMimeObject *part = g_mime_message_get_mime_part (message);
  g_assert_true (GMIME_IS_TEXT_PART (part));
  return g_mime_text_part_get_text (GMIME_TEXT_PART (part));
}

static char *
mail_text (const char *headers, const char *body)
{
  return g_strdup_printf ("From: Customer <customer@example.net>\r\nTo: support@example.test\r\n"
                          "Message-ID: <m%u@example.net>\r\n%s\r\n%s\r\n",
                          g_random_int (), headers, body);
}

static void
test_new_ticket_is_acknowledged (Fixture *fixture, gconstpointer data)
{
  g_autofree char *raw = mail_text ("Subject: Printer on fire\r\n"
                                    "References: <older@example.net>\r\n",
                                    "It is burning.");
  TmDecision *decision = run (fixture, raw);
  g_assert_true (decision->autoreply_send);
  g_assert_cmpstr (decision->autoreply_reason, ==, "new-ticket");
  g_assert_cmpstr (decision->autoreply_template, ==, "ack");
  g_assert_cmpstr (decision->autoreply_language, ==, "en");
  g_assert_nonnull (decision->autoreply_message_id);

  TmOutboxMail *mail = NULL;
  GMimeMessage *ack = parse_newest (fixture, &mail);
  g_assert_cmpstr (mail->status, ==, "pending");
  g_assert_cmpstr (mail->sender, ==, "");
  g_assert_cmpstr (mail->recipient, ==, "customer@example.net");
  g_assert_cmpstr (mail->kind, ==, "ack");
  g_assert_cmpstr (mail->origin_queue_id, ==, "4Ack1");
  g_assert_cmpstr (mail->message_id, ==, decision->autoreply_message_id);
  GMimeObject *object = GMIME_OBJECT (ack);
  g_assert_cmpstr (g_mime_object_get_header (object, "Auto-Submitted"), ==, "auto-replied");
  g_assert_cmpstr (g_mime_message_get_message_id (ack), ==, mail->message_id);
  g_autofree char *in_reply_to = g_strstrip (g_strdup (g_mime_object_get_header (object, "In-Reply-To")));
  g_assert_true (g_str_has_prefix (in_reply_to, "<m"));
  const char *references = g_mime_object_get_header (object, "References");
  g_assert_nonnull (strstr (references, "<older@example.net>"));
  g_assert_cmpstr (g_mime_message_get_subject (ack), ==, "[Ticket#1] Printer on fire");
  InternetAddressList *from = g_mime_message_get_from (ack);
  g_assert_cmpstr (internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (
                     internet_address_list_get_address (from, 0))), ==, "support@example.test");
  g_assert_cmpstr (internet_address_get_name (internet_address_list_get_address (from, 0)), ==,
                   "Example Support");
  g_autofree char *body = body_of (ack);
  g_assert_nonnull (strstr (body, "Customer"));
  g_assert_nonnull (strstr (body, "4"));
  g_assert_null (strstr (body, "{{"));
  tm_outbox_mail_free (mail);
  g_object_unref (ack);

  /* The acknowledgement is on the ticket, and a reply to it threads. */
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) messages = tm_store_ticket_messages (fixture->store, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (messages->len, ==, 2);
  TmStoredMessage *stored = g_ptr_array_index (messages, 1);
  g_assert_cmpstr (stored->direction, ==, "autoreply");
  g_autofree char *reply_headers = g_strdup_printf ("Subject: Re: your message\r\n"
                                                    "In-Reply-To: <%s>\r\n",
                                                    decision->autoreply_message_id);
  g_autofree char *reply = mail_text (reply_headers, "Thanks.");
  TmDecision *second = run (fixture, reply);
  g_assert_cmpint (second->ticket_id, ==, 1);
  g_assert_cmpint (second->threaded_by, ==, TM_THREADED_IN_REPLY_TO);
  g_assert_false (second->autoreply_send);
  g_assert_cmpstr (second->autoreply_reason, ==, "follow-up");
  tm_decision_free (&second);
  tm_decision_free (&decision);
}

static void
test_language_from_script_and_header (Fixture *fixture, gconstpointer data)
{
  static const struct { const char *headers; const char *body; const char *language; } cases[] = {
    { "Subject: =?UTF-8?B?2YHYp9iq2YjYsdipINi62YrYsSDYtdit2YrYrdip?=\r\n"
      "Content-Type: text/plain; charset=UTF-8\r\n",
      "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7\xd8\x8c \xd9\x84\xd9\x85 \xd8\xaa\xd8\xb5\xd9\x84 "
      "\xd9\x81\xd8\xa7\xd8\xaa\xd9\x88\xd8\xb1\xd8\xaa\xd9\x8a", "ar" },
    { "Subject: =?UTF-8?B?2b7Ysdiv2KfYrtiqINmG2KfZhdmI2YHZgg==?=\r\n"
      "Content-Type: text/plain; charset=UTF-8\r\n",
      "\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85\xd8\x8c \xd9\xbe\xd8\xb1\xd8\xaf\xd8\xa7\xd8\xae\xd8\xaa "
      "\xd9\x85\xd9\x86 \xd8\xa7\xd9\x86\xd8\xac\xd8\xa7\xd9\x85 \xd9\x86\xd8\xb4\xd8\xaf\xd9\x87 "
      "\xd8\xa7\xd8\xb3\xd8\xaa", "fa" },
    { "Subject: Invoice\r\nContent-Language: fa-IR\r\n", "Please help.", "fa" },
    { "Subject: Invoice\r\nContent-Language: de, ar\r\n", "Please help.", "ar" },
    { "Subject: Invoice\r\nContent-Language: de\r\n", "Please help.", "en" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *raw = g_strdup_printf ("From: c%u@example.net\r\nTo: support@example.test\r\n"
                                              "Message-ID: <lang%u@example.net>\r\n%s\r\n%s\r\n",
                                              i, i, cases[i].headers, cases[i].body);
      g_autofree char *sender = g_strdup_printf ("c%u@example.net", i);
      TmDecision *decision = run_full (fixture, raw, sender, NULL, NOW, TRUE);
      g_assert_cmpstr (decision->language, ==, cases[i].language);
      g_assert_cmpstr (decision->autoreply_language, ==, cases[i].language);
      g_assert_true (decision->autoreply_send);
      g_autoptr (TmTicket) ticket = NULL;
      g_autoptr (GError) error = NULL;
      g_assert_true (tm_store_get_ticket (fixture->store, decision->ticket_id, &ticket, &error));
      g_assert_cmpstr (ticket->language, ==, cases[i].language);
      TmOutboxMail *mail = NULL;
      GMimeMessage *ack = parse_newest (fixture, &mail);
      /* GMime keeps Content-* headers on the part. */
      g_assert_cmpstr (g_mime_object_get_header (g_mime_message_get_mime_part (ack),
                                                 "Content-Language"), ==, cases[i].language);
      tm_outbox_mail_free (mail);
      g_object_unref (ack);
      tm_decision_free (&decision);
    }
}

/* Every mail that must not be answered, and why. */
static void
test_suppression (Fixture *fixture, gconstpointer data)
{
  static const struct { const char *sender; const char *headers; const char *reason; } cases[] = {
    { "", "", "null-sender" },
    { "MAILER-DAEMON@example.net", "", "mailer-daemon" },
    { "postmaster@example.net", "", "mailer-daemon" },
    { "noreply@example.net", "", "no-reply-sender" },
    { "no-reply+billing@example.net", "", "no-reply-sender" },
    { "do-not-reply.news@example.net", "", "no-reply-sender" },
    { NULL, "Auto-Submitted: auto-replied\r\n", "auto-submitted" },
    { NULL, "Auto-Submitted: auto-generated (vacation)\r\n", "auto-submitted" },
    { NULL, "Precedence: bulk\r\n", "precedence" },
    { NULL, "Precedence: list\r\n", "precedence" },
    { NULL, "Precedence: junk\r\n", "precedence" },
    { NULL, "Precedence: auto_reply\r\n", "precedence" },
    { NULL, "List-Id: <news.example.net>\r\n", "list" },
    { NULL, "List-Unsubscribe: <mailto:leave@example.net>\r\n", "list" },
    { NULL, "X-Auto-Response-Suppress: All\r\n", "x-auto-response-suppress" },
    { NULL, "X-Auto-Response-Suppress: DR, OOF\r\n", "x-auto-response-suppress" },
    { NULL, "X-Auto-Response-Suppress: AutoReply\r\n", "x-auto-response-suppress" },
    { NULL, "X-Autoreply: yes\r\n", "x-autoreply" },
    { NULL, "X-Autorespond: yes\r\n", "x-autoreply" },
    { NULL, "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
      "delivery-report" },
    { NULL, "X-Spam-Flag: YES\r\n", "spam" },
    { NULL, "X-Loop: support@example.test\r\n", "loop" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *from = g_strdup_printf ("c%u@example.net", i);
      const char *sender = cases[i].sender != NULL ? cases[i].sender : from;
      const char *from_header = *sender != '\0' ? sender : from;
      g_autofree char *raw = g_strdup_printf ("From: %s\r\nTo: support@example.test\r\n"
                                              "Subject: case %u\r\nMessage-ID: <s%u@example.net>\r\n"
                                              "%s\r\nbody\r\n", from_header, i, i, cases[i].headers);
      TmDecision *decision = run_full (fixture, raw, sender, NULL, NOW, TRUE);
      if (g_strcmp0 (decision->autoreply_reason, cases[i].reason) != 0)
        g_error ("case %u (%s): reason %s, expected %s", i, cases[i].headers,
                 decision->autoreply_reason, cases[i].reason);
      g_assert_false (decision->autoreply_send);
      tm_decision_free (&decision);
    }
  g_autoptr (GPtrArray) mails = outbox (fixture);
  g_assert_cmpuint (mails->len, ==, 0);

  /* The opposites still get an answer. */
  static const char *const answered[] = {
    "Auto-Submitted: no\r\n", "X-Spam-Flag: NO\r\n", "X-Auto-Response-Suppress: DR, RN\r\n",
    "Precedence: first-class\r\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS (answered); i++)
    {
      g_autofree char *sender = g_strdup_printf ("ok%u@example.net", i);
      g_autofree char *raw = g_strdup_printf ("From: %s\r\nTo: support@example.test\r\n"
                                              "Subject: fine %u\r\nMessage-ID: <ok%u@example.net>\r\n"
                                              "%s\r\nbody\r\n", sender, i, i, answered[i]);
      TmDecision *decision = run_full (fixture, raw, sender, NULL, NOW, TRUE);
      if (!decision->autoreply_send)
        g_error ("\"%s\" was not answered: %s", answered[i], decision->autoreply_reason);
      tm_decision_free (&decision);
    }
}

/* A customer address the acknowledgement's To: cannot carry (found by
 * fuzz-pipeline): a ticket, but no acknowledgement queued without a To:. */
static void
test_unwritable_address_gets_no_ack (Fixture *fixture, gconstpointer data)
{
  /* The From: header and the envelope sender (SMTPUTF8 for the first). */
  static const struct { const char *from; const char *sender; } cases[] = {
    { "=?utf-8?b?2LnZhNmK?= <\xd8\xb9\xd9\x84\xd9\x8a@example.net>",
      "\xd8\xb9\xd9\x84\xd9\x8a@example.net" },                     /* non-ASCII local part */
    { "taro.@docomo.ne.jp", "taro.@docomo.ne.jp" },                  /* dotted local part */
    { "\"two words\"@example.net", "\"two words\"@example.net" },     /* quoted local part */
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *raw = g_strdup_printf ("From: %s\r\nTo: support@example.test\r\n"
                                              "Subject: address %u\r\nMessage-ID: <na%u@example.net>\r\n"
                                              "\r\nbody\r\n", cases[i].from, i, i);
      TmDecision *decision = run_full (fixture, raw, cases[i].sender, NULL, NOW, TRUE);
      g_assert_true (decision->ticket_new);
      if (g_strcmp0 (decision->autoreply_reason, "no-address") != 0)
        g_error ("From: %s: reason %s, expected no-address (customer %s)", cases[i].from,
                 decision->autoreply_reason, decision->customer_address);
      g_assert_false (decision->autoreply_send);
      tm_decision_free (&decision);
    }
  g_autoptr (GPtrArray) mails = outbox (fixture);
  g_assert_cmpuint (mails->len, ==, 0);
}

static void
test_own_address_and_disabled_queue (Fixture *fixture, gconstpointer data)
{
  /* A mail "from" the desk itself (or its team mailbox) gets no reply. */
  g_autofree char *own = g_strdup ("From: support@example.test\r\nTo: support@example.test\r\n"
                                   "Subject: hello\r\nMessage-ID: <own@example.net>\r\n\r\nx\r\n");
  TmDecision *decision = run_full (fixture, own, "someone@example.net", NULL, NOW, TRUE);
  g_assert_cmpstr (decision->autoreply_reason, ==, "own-address");
  tm_decision_free (&decision);
  g_autofree char *team = g_strdup ("From: frontline@example.test\r\nTo: support@example.test\r\n"
                                    "Subject: hello\r\nMessage-ID: <team@example.net>\r\n\r\nx\r\n");
  decision = run_full (fixture, team, "frontline@example.test", NULL, NOW, TRUE);
  g_assert_cmpstr (decision->autoreply_reason, ==, "own-address");
  tm_decision_free (&decision);

  g_autofree char *quiet = mail_text ("Subject: hello\r\n", "x");
  decision = run_full (fixture, quiet, NULL, "quiet@example.test", NOW, TRUE);
  g_assert_true (decision->ticket_new);
  g_assert_cmpstr (decision->autoreply_reason, ==, "disabled");
  tm_decision_free (&decision);
}

static void
test_rate_limit_per_sender_and_queue (Fixture *fixture, gconstpointer data)
{
  g_autofree char *first = mail_text ("Subject: one\r\n", "x");
  g_autofree char *second = mail_text ("Subject: two\r\n", "x");
  g_autofree char *third = mail_text ("Subject: three\r\n", "x");
  TmDecision *decision = run_full (fixture, first, NULL, NULL, NOW, TRUE);
  g_assert_true (decision->autoreply_send);
  tm_decision_free (&decision);
  /* A second new ticket from the same sender ten minutes later: none. */
  decision = run_full (fixture, second, NULL, NULL, NOW + 600, TRUE);
  g_assert_true (decision->ticket_new);
  g_assert_false (decision->autoreply_send);
  g_assert_cmpstr (decision->autoreply_reason, ==, "rate-limit");
  tm_decision_free (&decision);
  /* An hour after the acknowledgement: one again. */
  decision = run_full (fixture, third, NULL, NULL, NOW + 3600, TRUE);
  g_assert_true (decision->autoreply_send);
  tm_decision_free (&decision);

  /* billing has ack_rate_limit = 0 and answers follow-ups. */
  g_autofree char *b1 = mail_text ("Subject: invoice\r\n", "x");
  decision = run_full (fixture, b1, NULL, "billing@example.test", NOW, TRUE);
  g_assert_true (decision->autoreply_send);
  gint64 ticket = decision->ticket_id;
  tm_decision_free (&decision);
  g_autofree char *b2_headers = g_strdup_printf ("Subject: Re: [Bill#%" G_GINT64_FORMAT "] invoice\r\n",
                                                 ticket);
  g_autofree char *b2 = mail_text (b2_headers, "more");
  decision = run_full (fixture, b2, NULL, "billing@example.test", NOW + 60, TRUE);
  g_assert_false (decision->ticket_new);
  g_assert_true (decision->autoreply_send);
  g_assert_cmpstr (decision->autoreply_reason, ==, "follow-up");
  tm_decision_free (&decision);
}

static void
test_duplicate_and_dry_run (Fixture *fixture, gconstpointer data)
{
  g_autofree char *raw = mail_text ("Subject: once\r\n", "x");
  TmDecision *dry = run_full (fixture, raw, NULL, NULL, NOW, FALSE);
  g_assert_true (dry->autoreply_send);
  g_assert_null (dry->autoreply_message_id);
  tm_decision_free (&dry);
  g_autoptr (GPtrArray) none = outbox (fixture);
  g_assert_cmpuint (none->len, ==, 0);

  TmDecision *decision = run (fixture, raw);
  g_assert_true (decision->autoreply_send);
  tm_decision_free (&decision);
  /* The MTA retries the very same mail (after a tempfail or a crash). */
  decision = run (fixture, raw);
  g_assert_true (decision->duplicate);
  g_assert_false (decision->autoreply_send);
  g_assert_cmpstr (decision->autoreply_reason, ==, "duplicate");
  tm_decision_free (&decision);
  g_autoptr (GPtrArray) one = outbox (fixture);
  g_assert_cmpuint (one->len, ==, 1);
}

static void
test_after_hours (Fixture *fixture, gconstpointer data)
{
  /* Thursday 2026-11-19 20:00 in Riyadh (17:00 UTC): closed until Sunday 09:00. */
  g_autoptr (GDateTime) evening = g_date_time_new_from_iso8601 ("2026-11-19T20:00:00+03:00", NULL);
  g_autofree char *raw = mail_text ("Subject: invoice\r\n", "x");
  TmDecision *decision = run_full (fixture, raw, NULL, "billing@example.test",
                                   g_date_time_to_unix (evening), TRUE);
  g_assert_true (decision->autoreply_send);
  g_assert_cmpstr (decision->autoreply_template, ==, "after-hours");
  g_assert_cmpstr (decision->autoreply_reason, ==, "after-hours");
  g_assert_cmpstr (decision->autoreply_language, ==, "ar");
  TmOutboxMail *mail = NULL;
  GMimeMessage *ack = parse_newest (fixture, &mail);
  g_assert_cmpstr (mail->kind, ==, "after-hours");
  g_autofree char *body = body_of (ack);
  g_assert_nonnull (strstr (body, "2026-11-22 09:00"));
  g_assert_nonnull (strstr (body, "Asia/Riyadh"));
  tm_outbox_mail_free (mail);
  g_object_unref (ack);
  tm_decision_free (&decision);

  /* Sunday 10:00 is open; the holiday on Wednesday 2026-12-02 is not. */
  g_autoptr (GDateTime) sunday = g_date_time_new_from_iso8601 ("2026-11-22T10:00:00+03:00", NULL);
  g_autofree char *raw2 = mail_text ("Subject: second\r\n", "x");
  decision = run_full (fixture, raw2, "other@example.net", "billing@example.test",
                       g_date_time_to_unix (sunday), TRUE);
  g_assert_cmpstr (decision->autoreply_template, ==, "ack");
  tm_decision_free (&decision);
  g_autoptr (GDateTime) holiday = g_date_time_new_from_iso8601 ("2026-12-02T10:00:00+03:00", NULL);
  g_autofree char *raw3 = mail_text ("Subject: third\r\n", "x");
  decision = run_full (fixture, raw3, "third@example.net", "billing@example.test",
                       g_date_time_to_unix (holiday), TRUE);
  g_assert_cmpstr (decision->autoreply_template, ==, "after-hours");
  tm_decision_free (&decision);
}

/* Values from the customer's mail are data: no header line, no MIME part. */
static void
test_hostile_subject_and_name (Fixture *fixture, gconstpointer data)
{
  /* "x\r\nBcc: victim@example.org" in an encoded word, the name with a raw
   * control byte and invalid UTF-8. */
  g_autofree char *subject_b64 = g_base64_encode ((const guchar *) "x\r\nBcc: victim@example.org\r\n\r\nbody", 33);
  g_autofree char *name_b64 = g_base64_encode ((const guchar *) "Eve\nTo: a@b.c", 13);
  g_autofree char *raw = g_strdup_printf (
    "From: =?UTF-8?B?%s?= <eve@example.net>\r\nTo: support@example.test\r\n"
    "Subject: =?UTF-8?B?%s?= \xff\xfe tail\r\nMessage-ID: <hostile@example.net>\r\n\r\nx\r\n",
    name_b64, subject_b64);
  TmDecision *decision = run_full (fixture, raw, "eve@example.net", NULL, NOW, TRUE);
  g_assert_true (decision->autoreply_send);
  TmOutboxMail *mail = NULL;
  GMimeMessage *ack = parse_newest (fixture, &mail);
  GMimeHeaderList *headers = g_mime_object_get_header_list (GMIME_OBJECT (ack));
  int to_count = 0;
  for (int i = 0; i < g_mime_header_list_get_count (headers); i++)
    {
      GMimeHeader *header = g_mime_header_list_get_header_at (headers, i);
      g_assert_cmpstr (g_mime_header_get_name (header), !=, "Bcc");
      to_count += g_ascii_strcasecmp (g_mime_header_get_name (header), "To") == 0;
    }
  g_assert_cmpint (to_count, ==, 1);
  g_assert_true (GMIME_IS_TEXT_PART (g_mime_message_get_mime_part (ack)));
  g_assert_null (strstr (mail->data, "\r\nBcc:"));
  g_assert_cmpstr (mail->recipient, ==, "eve@example.net");
  tm_outbox_mail_free (mail);
  g_object_unref (ack);
  tm_decision_free (&decision);
}

static void
test_template_values (Fixture *fixture, gconstpointer data)
{
  const TmQueue *billing = tm_config_queue_by_name (fixture->config, "billing");
  TmAutoreplyRequest request = {
    .queue = billing, .ticket_id = 42, .customer_address = "c@example.net",
    .template_name = "ack", .language = "ar",
  };
  TmParseOptions options = { 0 };
  const char raw[] = "Subject: Re: [Bill#42] Re: refund\r\n\r\nx\r\n";
  TmMessage *message = tm_message_parse (raw, strlen (raw), &options);
  /* Thursday 16:00 Riyadh: one hour left today, the other 23 from Sunday on. */
  g_autoptr (GDateTime) when = g_date_time_new_from_iso8601 ("2026-11-19T16:00:00+03:00", NULL);
  g_autoptr (GHashTable) values = tm_autoreply_values (&request, message, g_date_time_to_unix (when));
  g_assert_cmpstr (g_hash_table_lookup (values, "ticket.id"), ==, "42");
  g_assert_cmpstr (g_hash_table_lookup (values, "ticket.tag"), ==, "[Bill#42]");
  g_assert_cmpstr (g_hash_table_lookup (values, "ticket.subject"), ==, "Re: Re: refund");
  g_assert_cmpstr (g_hash_table_lookup (values, "customer.name"), ==, "c@example.net");
  g_assert_cmpstr (g_hash_table_lookup (values, "queue.name"), ==, "billing");
  g_assert_cmpstr (g_hash_table_lookup (values, "response.hours"), ==, "24");
  /* 24 business hours: 1 on Thursday, 8 each on Sun, Mon, then 7 on Tue. */
  g_assert_cmpstr (g_hash_table_lookup (values, "response.due"), ==, "2026-11-24 16:00");
  g_assert_cmpstr (g_hash_table_lookup (values, "hours.next_open"), ==, "2026-11-19 16:00");
  g_assert_cmpstr (g_hash_table_lookup (values, "hours.open"), ==, "09:00-17:00");
  for (const char *const *name = tm_template_placeholders (); *name != NULL; name++)
    g_assert_true (g_hash_table_contains (values, *name));
  tm_message_free (&message);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tm_message_library_init ();
#define ADD(path, fn) \
  g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/autoreply/new-ticket-is-acknowledged", test_new_ticket_is_acknowledged);
  ADD ("/autoreply/language/script-and-content-language", test_language_from_script_and_header);
  ADD ("/autoreply/suppression/rfc3834-and-friends", test_suppression);
  ADD ("/autoreply/suppression/own-address-and-disabled-queue", test_own_address_and_disabled_queue);
  ADD ("/autoreply/suppression/unwritable-address", test_unwritable_address_gets_no_ack);
  ADD ("/autoreply/rate-limit/per-sender-and-queue", test_rate_limit_per_sender_and_queue);
  ADD ("/autoreply/duplicate-and-dry-run", test_duplicate_and_dry_run);
  ADD ("/autoreply/after-hours/riyadh-week", test_after_hours);
  ADD ("/autoreply/hostile/subject-and-name", test_hostile_subject_and_name);
  ADD ("/autoreply/template-values", test_template_values);
  return g_test_run ();
}
