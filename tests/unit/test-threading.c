/* test-threading.c - tm_thread_find against a real store: which clue wins. */
#include "threading.h"

#include <glib/gstdio.h>

#include "tm-test.h"
#include <string.h>

typedef struct {
  TmTestDesk desk;
  const TmQueue *support;
  const TmQueue *billing;
} Fixture;

static gint64
make_ticket (Fixture *fixture, const char *queue, const char *message_id)
{
  g_autoptr (GError) error = NULL;
  char *no_tags[] = { NULL };
  TmTicket ticket = { .queue = (char *) queue, .customer_address = (char *) "c@example.net",
                      .subject = (char *) "s", .status = (char *) "new",
                      .priority = (char *) "normal", .tags = no_tags,
                      .created_at = 1, .updated_at = 1 };
  g_assert_true (tm_store_begin (fixture->desk.store, &error));
  g_assert_true (tm_store_create_ticket (fixture->desk.store, &ticket, &error));
  g_assert_true (tm_store_remember_message_id (fixture->desk.store, ticket.id, message_id, "inbound", &error));
  g_assert_true (tm_store_commit (fixture->desk.store, &error));
  g_assert_no_error (error);
  return ticket.id;
}

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  tm_test_desk_open (&fixture->desk,
                     "[queue support]\naddress = support@example.test\n"
                     "[queue billing]\naddress = billing@example.test\ntag_prefix = Bill\n");
  fixture->support = tm_config_queue_by_name (fixture->desk.config, "support");
  fixture->billing = tm_config_queue_by_name (fixture->desk.config, "billing");
  g_assert_cmpint (make_ticket (fixture, "support", "one@x"), ==, 1);
  g_assert_cmpint (make_ticket (fixture, "support", "two@x"), ==, 2);
  g_assert_cmpint (make_ticket (fixture, "billing", "three@x"), ==, 3);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  tm_test_desk_close (&fixture->desk);
}

static void
find (Fixture *fixture, const TmQueue *queue, const char *raw, gint64 want_id,
      TmThreadedBy want_how, gint64 want_ignored)
{
  TmMessage *message = tm_message_parse (raw, strlen (raw), NULL);
  g_autoptr (GError) error = NULL;
  gint64 id = -1, ignored = -1;
  TmThreadedBy how;
  g_assert_true (tm_store_begin (fixture->desk.store, &error));
  g_assert_true (tm_thread_find (fixture->desk.store, queue, message, &id, &how, &ignored, &error));
  tm_store_rollback (fixture->desk.store);
  g_assert_no_error (error);
  if (id != want_id || how != want_how || ignored != want_ignored)
    g_error ("%s: got ticket %" G_GINT64_FORMAT " by %s (ignored %" G_GINT64_FORMAT "), want %"
             G_GINT64_FORMAT " by %s (ignored %" G_GINT64_FORMAT ")", raw, id,
             tm_threaded_by_name (how), ignored, want_id, tm_threaded_by_name (want_how), want_ignored);
  tm_message_free (&message);
}

static void
test_tag_beats_headers (Fixture *fixture, gconstpointer data)
{
  find (fixture, fixture->support, "Subject: [Ticket#2] x\nIn-Reply-To: <one@x>\n\n",
        2, TM_THREADED_SUBJECT_TAG, 0);
}

static void
test_in_reply_to_beats_references (Fixture *fixture, gconstpointer data)
{
  find (fixture, fixture->support, "Subject: x\nIn-Reply-To: <one@x>\nReferences: <two@x>\n\n",
        1, TM_THREADED_IN_REPLY_TO, 0);
}

static void
test_newest_reference_first (Fixture *fixture, gconstpointer data)
{
  find (fixture, fixture->support, "Subject: x\nReferences: <one@x> <nobody@x> <two@x>\n\n",
        2, TM_THREADED_REFERENCES, 0);
}

static void
test_other_queue_clues_are_ignored (Fixture *fixture, gconstpointer data)
{
  find (fixture, fixture->support, "Subject: [Ticket#3] x\nIn-Reply-To: <three@x>\n\n",
        0, TM_THREADED_NONE, 3);
  find (fixture, fixture->billing, "Subject: [Bill#3] x\n\n", 3, TM_THREADED_SUBJECT_TAG, 0);
  find (fixture, fixture->billing, "Subject: [Ticket#3] x\n\n", 0, TM_THREADED_NONE, 0);
}

static void
test_missing_ticket_tag_falls_back_to_headers (Fixture *fixture, gconstpointer data)
{
  find (fixture, fixture->support, "Subject: [Ticket#77] x\nReferences: <one@x>\n\n",
        1, TM_THREADED_REFERENCES, 77);
}

static void
test_many_references_are_bounded (Fixture *fixture, gconstpointer data)
{
  /* Only the newest references are looked up: a match buried under 5,000
   * unknown ones is not worth 5,000 queries per mail. */
  GString *raw = g_string_new ("Subject: x\nReferences: <one@x>");
  for (int i = 0; i < 5000; i++)
    g_string_append_printf (raw, " <junk%d@x>", i);
  g_string_append (raw, "\n\n");
  find (fixture, fixture->support, raw->str, 0, TM_THREADED_NONE, 0);
  g_string_free (raw, TRUE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tm_message_library_init ();
#define ADD(path, function) \
  g_test_add (path, Fixture, NULL, fixture_set_up, function, fixture_tear_down)
  ADD ("/threading/tag-beats-headers", test_tag_beats_headers);
  ADD ("/threading/in-reply-to-beats-references", test_in_reply_to_beats_references);
  ADD ("/threading/newest-reference-first", test_newest_reference_first);
  ADD ("/threading/other-queue-clues-ignored", test_other_queue_clues_are_ignored);
  ADD ("/threading/missing-ticket-tag-falls-back", test_missing_ticket_tag_falls_back_to_headers);
  ADD ("/threading/many-references-bounded", test_many_references_are_bounded);
#undef ADD
  return g_test_run ();
}
