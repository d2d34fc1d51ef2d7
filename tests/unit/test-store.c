/* test-store.c - the ticket database against real SQLite files.
 *
 * Each test works in a directory of its own, made and removed by the
 * fixture. A second, plain SQLite connection (the `peek` helpers) looks at
 * what the store wrote from outside, the way ticketctl or an admin's sqlite3
 * would. Links store.c only; TmAttachment comes from message.h.
 */
#include "store.h"

#include "message.h"
#include "tm-test.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/fs.h>
#endif

typedef struct {
  char *directory;
  char *path;               /* tickets.db inside directory */
  TmStore *store;           /* opened with create by the fixture */
} Fixture;

static const TmStoreOptions default_options = {
  .busy_timeout_ms = 5000, .synchronous_full = FALSE, .create = TRUE,
};

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  fixture->directory = g_dir_make_tmp ("tm-store-XXXXXX", &error);
  g_assert_no_error (error);
  fixture->path = g_build_filename (fixture->directory, "tickets.db", NULL);
  fixture->store = tm_store_open (fixture->path, &default_options, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fixture->store);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  tm_store_close (&fixture->store);
  g_assert_null (fixture->store);
  tm_test_remove_directory (fixture->directory);
  g_free (fixture->path);
  g_free (fixture->directory);
}

/* ---- helpers ---------------------------------------------------------- */

static sqlite3 *
peek_open (const char *path)
{
  sqlite3 *db = NULL;
  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
  return db;
}

/* The first column of the first row of SQL, as an integer. */
static gint64
peek_int (const char *path, const char *sql)
{
  sqlite3 *db = peek_open (path);
  sqlite3_stmt *stmt = NULL;
  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  gint64 value = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return value;
}

static char *
peek_text (const char *path, const char *sql)
{
  sqlite3 *db = peek_open (path);
  sqlite3_stmt *stmt = NULL;
  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  char *value = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return value;
}

static void
peek_exec (const char *path, const char *sql)
{
  sqlite3 *db = peek_open (path);
  char *message = NULL;
  int rc = sqlite3_exec (db, sql, NULL, NULL, &message);
  if (rc != SQLITE_OK)
    g_error ("%s: %s", sql, message);
  sqlite3_close (db);
}

static TmTicket
ticket_template (const char *queue, const char *status, gint64 updated_at, char **tags)
{
  static char *no_tags[] = { NULL };
  TmTicket ticket = {
    .queue = (char *) queue,
    .customer_address = (char *) "customer@example.net",
    .customer_name = (char *) "A Customer",
    .subject = (char *) "printer on fire",
    .status = (char *) status,
    .priority = (char *) "normal",
    .team = (char *) "frontline",
    .language = (char *) "en",
    .tags = tags != NULL ? tags : no_tags,
    .created_at = updated_at,
    .updated_at = updated_at,
  };
  return ticket;
}

/* Creates a ticket in a transaction of its own; returns its id. */
static gint64
create_ticket (TmStore *store, const char *queue, const char *status, gint64 updated_at)
{
  g_autoptr (GError) error = NULL;
  TmTicket ticket = ticket_template (queue, status, updated_at, NULL);
  g_assert_true (tm_store_begin (store, &error));
  g_assert_true (tm_store_create_ticket (store, &ticket, &error));
  g_assert_true (tm_store_commit (store, &error));
  g_assert_no_error (error);
  g_assert_cmpint (ticket.id, >, 0);
  return ticket.id;
}

static TmStoredMessage
message_template (gint64 ticket_id, const char *queue, const char *key, const char *message_id,
                  gint64 received_at)
{
  TmStoredMessage message = {
    .ticket_id = ticket_id,
    .queue = (char *) queue,
    .message_key = (char *) key,
    .message_id = (char *) message_id,
    .direction = (char *) "customer",
    .sender = (char *) "customer@example.net",
    .from_address = (char *) "customer@example.net",
    .subject = (char *) "printer on fire",
    .received_at = received_at,
    .body_text = (char *) "It is still burning.",
    .size = 1234,
  };
  return message;
}

/* ---- opening ---------------------------------------------------------- */

static void
test_reopen_keeps_data (Fixture *fixture, gconstpointer data)
{
  gint64 id = create_ticket (fixture->store, "support", "new", 100);
  tm_store_close (&fixture->store);

  g_autoptr (GError) error = NULL;
  TmStoreOptions existing = { .busy_timeout_ms = 100, .create = FALSE };
  fixture->store = tm_store_open (fixture->path, &existing, &error);
  g_assert_no_error (error);
  g_autoptr (TmTicket) ticket = NULL;
  g_assert_true (tm_store_get_ticket (fixture->store, id, &ticket, &error));
  g_assert_nonnull (ticket);
  g_assert_cmpstr (ticket->subject, ==, "printer on fire");
}

static void
test_schema_version_is_set (Fixture *fixture, gconstpointer data)
{
  g_assert_cmpint (tm_store_schema_version (), >=, 1);
  g_assert_cmpint (peek_int (fixture->path, "PRAGMA user_version"), ==, tm_store_schema_version ());
  /* Every table the header promises is there. */
  const char *tables[] = { "tickets", "ticket_tags", "messages", "attachments", "message_ids", "events" };
  for (gsize i = 0; i < G_N_ELEMENTS (tables); i++)
    {
      g_autofree char *sql = g_strdup_printf ("SELECT count(*) FROM sqlite_schema"
                                              " WHERE type = 'table' AND name = '%s'", tables[i]);
      g_assert_cmpint (peek_int (fixture->path, sql), ==, 1);
    }
}

static void
test_newer_schema_is_refused (Fixture *fixture, gconstpointer data)
{
  tm_store_close (&fixture->store);
  g_autofree char *sql = g_strdup_printf ("PRAGMA user_version = %d", tm_store_schema_version () + 1);
  peek_exec (fixture->path, sql);

  g_autoptr (GError) error = NULL;
  TmStore *store = tm_store_open (fixture->path, &default_options, &error);
  g_assert_null (store);
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_SCHEMA);
  g_autofree char *expected = g_strdup_printf ("database schema version %d is newer than this "
                                               "ticket-milter (%d)", tm_store_schema_version () + 1,
                                               tm_store_schema_version ());
  g_assert_nonnull (strstr (error->message, expected));
  /* Refused means untouched. */
  g_assert_cmpint (peek_int (fixture->path, "PRAGMA user_version"), ==, tm_store_schema_version () + 1);
}

static void
test_missing_file_without_create (Fixture *fixture, gconstpointer data)
{
  g_autofree char *missing = g_build_filename (fixture->directory, "missing.db", NULL);
  TmStoreOptions existing = { .busy_timeout_ms = 100, .create = FALSE };
  g_autoptr (GError) error = NULL;
  TmStore *store = tm_store_open (missing, &existing, &error);
  g_assert_null (store);
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_OPEN);
  g_assert_nonnull (strstr (error->message, missing));
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
}

static void
test_not_a_database (Fixture *fixture, gconstpointer data)
{
  g_autofree char *junk = g_build_filename (fixture->directory, "junk.db", NULL);
  g_assert_true (g_file_set_contents (junk, "this is a mailbox, not a database\n"
                                      "and it goes on for a while ........................\n"
                                      "...................................................\n", -1, NULL));
  g_autoptr (GError) error = NULL;
  TmStore *store = tm_store_open (junk, &default_options, &error);
  g_assert_null (store);
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_OPEN);
  g_assert_nonnull (strstr (error->message, junk));
}

static void
test_journal_mode_is_wal (Fixture *fixture, gconstpointer data)
{
  /* WAL is a property of the file: a fresh connection sees it too. */
  g_autofree char *mode = peek_text (fixture->path, "PRAGMA journal_mode");
  g_assert_cmpstr (mode, ==, "wal");
}

static void
test_in_memory (void)
{
  g_autoptr (GError) error = NULL;
  TmStore *store = tm_store_open (":memory:", &default_options, &error);
  g_assert_no_error (error);
  gint64 id = create_ticket (store, "support", "new", 5);
  g_autoptr (TmTicket) ticket = NULL;
  g_assert_true (tm_store_get_ticket (store, id, &ticket, &error));
  g_assert_cmpstr (ticket->queue, ==, "support");
  tm_store_close (&store);
  g_assert_null (store);
  tm_store_close (&store);   /* NULL is fine */
}

/* ---- tickets ---------------------------------------------------------- */

static void
test_ticket_round_trip_with_tags (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  char *tags[] = { (char *) "billing", (char *) "vip", (char *) "billing", (char *) "arabic", NULL };
  TmTicket ticket = ticket_template ("billing", "open", 200, tags);
  ticket.priority = (char *) "urgent";
  ticket.assignee = (char *) "alice@example.com";
  ticket.customer_name = NULL;
  ticket.created_at = 150;
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_create_ticket (fixture->store, &ticket, &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_assert_no_error (error);

  g_autoptr (TmTicket) got = NULL;
  g_assert_true (tm_store_get_ticket (fixture->store, ticket.id, &got, &error));
  g_assert_no_error (error);
  g_assert_cmpint (got->id, ==, ticket.id);
  g_assert_cmpstr (got->queue, ==, "billing");
  g_assert_cmpstr (got->customer_address, ==, "customer@example.net");
  g_assert_null (got->customer_name);
  g_assert_cmpstr (got->status, ==, "open");
  g_assert_cmpstr (got->priority, ==, "urgent");
  g_assert_cmpstr (got->team, ==, "frontline");
  g_assert_cmpstr (got->assignee, ==, "alice@example.com");
  g_assert_cmpstr (got->language, ==, "en");
  g_assert_cmpint (got->created_at, ==, 150);
  g_assert_cmpint (got->updated_at, ==, 200);
  /* In the order given; a tag given twice is kept once. */
  const char *want[] = { "billing", "vip", "arabic", NULL };
  g_assert_cmpstrv (got->tags, want);

  /* No tags is an empty list, never NULL. */
  gint64 plain = create_ticket (fixture->store, "support", "new", 300);
  g_autoptr (TmTicket) untagged = NULL;
  g_assert_true (tm_store_get_ticket (fixture->store, plain, &untagged, &error));
  g_assert_nonnull (untagged->tags);
  g_assert_null (untagged->tags[0]);
}

static void
test_missing_ticket_is_not_an_error (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmTicket *ticket = (TmTicket *) 0x1;  /* must be overwritten */
  g_assert_true (tm_store_get_ticket (fixture->store, 4242, &ticket, &error));
  g_assert_no_error (error);
  g_assert_null (ticket);
}

static void
test_ids_never_reused (Fixture *fixture, gconstpointer data)
{
  create_ticket (fixture->store, "support", "new", 1);
  gint64 second = create_ticket (fixture->store, "support", "new", 2);
  g_autofree char *sql = g_strdup_printf ("DELETE FROM tickets WHERE id = %" G_GINT64_FORMAT, second);
  peek_exec (fixture->path, sql);
  /* Ticket numbers are printed in subjects and quoted by customers: the
   * number of a deleted ticket must never name another one. */
  gint64 third = create_ticket (fixture->store, "support", "new", 3);
  g_assert_cmpint (third, ==, second + 1);
}

static void
test_touch_ticket (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gint64 id = create_ticket (fixture->store, "support", "pending", 10);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_touch_ticket (fixture->store, id, 20, NULL, &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_autoptr (TmTicket) ticket = NULL;
  g_assert_true (tm_store_get_ticket (fixture->store, id, &ticket, &error));
  g_assert_cmpint (ticket->updated_at, ==, 20);
  g_assert_cmpstr (ticket->status, ==, "pending");
  g_clear_pointer (&ticket, tm_ticket_free);

  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_touch_ticket (fixture->store, id, 30, "open", &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_assert_true (tm_store_get_ticket (fixture->store, id, &ticket, &error));
  g_assert_cmpint (ticket->updated_at, ==, 30);
  g_assert_cmpstr (ticket->status, ==, "open");
  g_assert_cmpint (ticket->created_at, ==, 10);

  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_false (tm_store_touch_ticket (fixture->store, id + 100, 40, "open", &error));
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  tm_store_rollback (fixture->store);
}

static void
test_invalid_status_is_an_error (Fixture *fixture, gconstpointer data)
{
  /* A bad value costs a tempfail, not the daemon, and the connection goes on. */
  g_autoptr (GError) error = NULL;
  TmTicket ticket = ticket_template ("support", "escalated", 1, NULL);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_false (tm_store_create_ticket (fixture->store, &ticket, &error));
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  g_assert_true (g_str_has_prefix (error->message, "create ticket: "));
  g_assert_nonnull (strstr (error->message, "CHECK constraint failed"));
  tm_store_rollback (fixture->store);
  g_clear_error (&error);

  ticket = ticket_template ("support", "new", 1, NULL);
  ticket.priority = (char *) "whenever";
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_false (tm_store_create_ticket (fixture->store, &ticket, &error));
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  tm_store_rollback (fixture->store);

  g_assert_cmpint (create_ticket (fixture->store, "support", "new", 2), >, 0);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, 1);
}

/* ---- messages --------------------------------------------------------- */

static GPtrArray *
two_attachments (void)
{
  GPtrArray *attachments = g_ptr_array_new ();
  static TmAttachment invoice = { (char *) "فاتورة.pdf", (char *) "application/pdf", 52000 };
  static TmAttachment unnamed = { (char *) "", (char *) "image/png", 7 };
  g_ptr_array_add (attachments, &invoice);
  g_ptr_array_add (attachments, &unnamed);
  return attachments;
}

static void
test_add_message_and_find_it (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gint64 ticket = create_ticket (fixture->store, "support", "new", 1);
  g_autoptr (GPtrArray) attachments = two_attachments ();
  TmStoredMessage message = message_template (ticket, "support", "first@customer.example",
                                              "first@customer.example", 1);
  message.attachments = attachments;
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_add_message (fixture->store, &message, &error));
  g_assert_no_error (error);
  g_assert_cmpint (message.id, >, 0);

  /* Inside the same transaction the mail is already visible. */
  gint64 found = -1;
  g_assert_true (tm_store_find_message (fixture->store, "support", "first@customer.example",
                                        &found, &error));
  g_assert_cmpint (found, ==, ticket);
  g_assert_true (tm_store_commit (fixture->store, &error));

  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_find_message (fixture->store, "support", "first@customer.example",
                                        &found, &error));
  g_assert_cmpint (found, ==, ticket);
  g_assert_true (tm_store_find_message (fixture->store, "billing", "first@customer.example",
                                        &found, &error));
  g_assert_cmpint (found, ==, 0);
  g_assert_true (tm_store_find_message (fixture->store, "support", "sha256:00", &found, &error));
  g_assert_cmpint (found, ==, 0);

  g_assert_true (tm_store_find_ticket_by_message_id (fixture->store, "support",
                                                     "first@customer.example", &found, &error));
  g_assert_cmpint (found, ==, ticket);
  /* The same Message-ID in another queue is another conversation. */
  g_assert_true (tm_store_find_ticket_by_message_id (fixture->store, "billing",
                                                     "first@customer.example", &found, &error));
  g_assert_cmpint (found, ==, 0);
  g_assert_true (tm_store_find_ticket_by_message_id (fixture->store, "support",
                                                     "unknown@x", &found, &error));
  g_assert_cmpint (found, ==, 0);
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_assert_no_error (error);

  g_autofree char *origin = peek_text (fixture->path, "SELECT origin FROM message_ids");
  g_assert_cmpstr (origin, ==, "inbound");
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM attachments"), ==, 2);
}

static void
test_message_without_message_id (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gint64 ticket = create_ticket (fixture->store, "support", "new", 1);
  TmStoredMessage message = message_template (ticket, "support", "sha256:abcdef", NULL, 1);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_add_message (fixture->store, &message, &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_assert_no_error (error);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM message_ids"), ==, 0);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM messages"), ==, 1);
}

static void
test_duplicate_message_key_fails (Fixture *fixture, gconstpointer data)
{
  /* The pipeline checks first; the unique key is the safety net. */
  g_autoptr (GError) error = NULL;
  gint64 ticket = create_ticket (fixture->store, "support", "new", 1);
  TmStoredMessage message = message_template (ticket, "support", "dup@x", "dup@x", 1);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_add_message (fixture->store, &message, &error));
  g_assert_true (tm_store_commit (fixture->store, &error));

  TmStoredMessage again = message_template (ticket, "support", "dup@x", "dup@x", 2);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_add_event (fixture->store, ticket, 0, "customer-message", 2, NULL, &error));
  g_assert_false (tm_store_add_message (fixture->store, &again, &error));
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  g_assert_true (g_str_has_prefix (error->message, "insert message: "));
  g_assert_nonnull (strstr (error->message, "UNIQUE"));
  g_assert_cmpint (again.id, ==, 0);
  tm_store_rollback (fixture->store);
  g_clear_error (&error);

  /* The same key in another queue is another mail. */
  gint64 billing = create_ticket (fixture->store, "billing", "new", 3);
  TmStoredMessage other = message_template (billing, "billing", "dup@x", "dup@x", 3);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_add_message (fixture->store, &other, &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_assert_no_error (error);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM messages"), ==, 2);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM events"), ==, 0);
}

static void
test_remember_message_id (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gint64 support = create_ticket (fixture->store, "support", "new", 1);
  gint64 billing = create_ticket (fixture->store, "billing", "new", 1);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_remember_message_id (fixture->store, support, "ack.1@desk", "generated",
                                               &error));
  /* Seen again (an MTA retry): the first ticket keeps it, no error. */
  g_assert_true (tm_store_remember_message_id (fixture->store, support, "ack.1@desk", "generated",
                                               &error));
  g_assert_true (tm_store_remember_message_id (fixture->store, billing, "ack.1@desk", "generated",
                                               &error));
  g_assert_no_error (error);
  g_assert_false (tm_store_remember_message_id (fixture->store, 999, "ack.2@desk", "generated",
                                                &error));
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  g_clear_error (&error);

  gint64 found = 0;
  g_assert_true (tm_store_find_ticket_by_message_id (fixture->store, "support", "ack.1@desk",
                                                     &found, &error));
  g_assert_cmpint (found, ==, support);
  /* Remembered within the ticket's own queue. */
  g_assert_true (tm_store_find_ticket_by_message_id (fixture->store, "billing", "ack.1@desk",
                                                     &found, &error));
  g_assert_cmpint (found, ==, billing);
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_assert_no_error (error);
  g_assert_cmpint (peek_int (fixture->path,
                             "SELECT count(*) FROM message_ids WHERE origin = 'generated'"), ==, 2);
}

static void
test_ticket_messages_oldest_first (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gint64 ticket = create_ticket (fixture->store, "support", "new", 1);
  gint64 other_ticket = create_ticket (fixture->store, "support", "new", 1);
  g_autoptr (GPtrArray) attachments = two_attachments ();

  TmStoredMessage later = message_template (ticket, "support", "later@x", "later@x", 500);
  later.direction = (char *) "agent";
  later.from_name = (char *) "Alice";
  later.mta_queue_id = (char *) "4F2A1C0D3E";
  later.truncated = TRUE;
  later.size = 31457280;
  later.warnings = (char *) "unknown charset x-klingon\nmissing Date";
  later.attachments = attachments;
  TmStoredMessage earlier = message_template (ticket, "support", "earlier@x", "earlier@x", 100);
  earlier.sender = (char *) "";
  TmStoredMessage elsewhere = message_template (other_ticket, "support", "else@x", "else@x", 50);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_add_message (fixture->store, &later, &error));
  g_assert_true (tm_store_add_message (fixture->store, &earlier, &error));
  g_assert_true (tm_store_add_message (fixture->store, &elsewhere, &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_assert_no_error (error);

  g_autoptr (GPtrArray) messages = tm_store_ticket_messages (fixture->store, ticket, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (messages->len, ==, 2);
  const TmStoredMessage *first = g_ptr_array_index (messages, 0);
  const TmStoredMessage *second = g_ptr_array_index (messages, 1);
  g_assert_cmpstr (first->message_key, ==, "earlier@x");
  g_assert_cmpint (first->id, ==, earlier.id);
  g_assert_cmpstr (first->sender, ==, "");
  g_assert_null (first->from_name);
  g_assert_null (first->mta_queue_id);
  g_assert_null (first->warnings);
  g_assert_false (first->truncated);
  g_assert_cmpuint (first->attachments->len, ==, 0);

  g_assert_cmpint (second->id, ==, later.id);
  g_assert_cmpint (second->ticket_id, ==, ticket);
  g_assert_cmpstr (second->queue, ==, "support");
  g_assert_cmpstr (second->message_id, ==, "later@x");
  g_assert_cmpstr (second->direction, ==, "agent");
  g_assert_cmpstr (second->sender, ==, "customer@example.net");
  g_assert_cmpstr (second->from_address, ==, "customer@example.net");
  g_assert_cmpstr (second->from_name, ==, "Alice");
  g_assert_cmpstr (second->subject, ==, "printer on fire");
  g_assert_cmpstr (second->mta_queue_id, ==, "4F2A1C0D3E");
  g_assert_cmpint (second->received_at, ==, 500);
  g_assert_cmpstr (second->body_text, ==, "It is still burning.");
  g_assert_cmpuint (second->size, ==, 31457280);
  g_assert_true (second->truncated);
  g_assert_cmpstr (second->warnings, ==, "unknown charset x-klingon\nmissing Date");
  g_assert_cmpuint (second->attachments->len, ==, 2);
  const TmAttachment *invoice = g_ptr_array_index (second->attachments, 0);
  const TmAttachment *unnamed = g_ptr_array_index (second->attachments, 1);
  g_assert_cmpstr (invoice->filename, ==, "فاتورة.pdf");
  g_assert_cmpstr (invoice->content_type, ==, "application/pdf");
  g_assert_cmpuint (invoice->size, ==, 52000);
  g_assert_cmpstr (unnamed->filename, ==, "");
  g_assert_cmpstr (unnamed->content_type, ==, "image/png");
  g_assert_cmpuint (unnamed->size, ==, 7);

  g_autoptr (GPtrArray) none = tm_store_ticket_messages (fixture->store, 999, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (none->len, ==, 0);
}

static void
test_events_are_recorded (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gint64 ticket = create_ticket (fixture->store, "support", "new", 1);
  TmStoredMessage message = message_template (ticket, "support", "m@x", "m@x", 7);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_add_event (fixture->store, ticket, 0, "created", 7, NULL, &error));
  g_assert_true (tm_store_add_message (fixture->store, &message, &error));
  g_assert_true (tm_store_add_event (fixture->store, ticket, message.id, "customer-message", 8,
                                     NULL, &error));
  g_assert_true (tm_store_add_event (fixture->store, ticket, 0, "status-change", 9,
                                     "new -> open", &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_assert_no_error (error);

  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM events"), ==, 3);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM events WHERE message_row IS NULL"),
                   ==, 2);
  g_autofree char *sql = g_strdup_printf ("SELECT count(*) FROM events WHERE kind = 'customer-message'"
                                          " AND at = 8 AND ticket_id = %" G_GINT64_FORMAT
                                          " AND message_row = %" G_GINT64_FORMAT, ticket, message.id);
  g_assert_cmpint (peek_int (fixture->path, sql), ==, 1);
  g_autofree char *detail = peek_text (fixture->path,
                                       "SELECT detail FROM events WHERE kind = 'status-change'");
  g_assert_cmpstr (detail, ==, "new -> open");

  /* An event on a ticket that does not exist breaks a foreign key. */
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_false (tm_store_add_event (fixture->store, 999, 0, "created", 10, NULL, &error));
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  tm_store_rollback (fixture->store);
}

/* ---- transactions ----------------------------------------------------- */

static void
test_rollback_discards (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmTicket ticket = ticket_template ("support", "new", 1, NULL);
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_create_ticket (fixture->store, &ticket, &error));
  TmStoredMessage message = message_template (ticket.id, "support", "gone@x", "gone@x", 1);
  g_assert_true (tm_store_add_message (fixture->store, &message, &error));
  g_assert_true (tm_store_add_event (fixture->store, ticket.id, 0, "created", 1, NULL, &error));
  tm_store_rollback (fixture->store);

  g_autoptr (TmTicket) got = NULL;
  g_assert_true (tm_store_get_ticket (fixture->store, ticket.id, &got, &error));
  g_assert_null (got);
  g_assert_true (tm_store_begin (fixture->store, &error));
  gint64 found = -1;
  g_assert_true (tm_store_find_message (fixture->store, "support", "gone@x", &found, &error));
  g_assert_cmpint (found, ==, 0);
  g_assert_true (tm_store_find_ticket_by_message_id (fixture->store, "support", "gone@x", &found,
                                                     &error));
  g_assert_cmpint (found, ==, 0);
  tm_store_rollback (fixture->store);
  g_assert_no_error (error);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM events"), ==, 0);
}

static void
test_list_filters_and_order (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gint64 a = create_ticket (fixture->store, "support", "new", 100);
  gint64 b = create_ticket (fixture->store, "billing", "new", 300);
  gint64 c = create_ticket (fixture->store, "support", "open", 200);
  gint64 d = create_ticket (fixture->store, "support", "new", 300);  /* same time as b */
  struct {
    const char *status, *queue;
    guint limit;
    gint64 want[5];
  } cases[] = {
    { NULL, NULL, 0, { d, b, c, a, 0 } },
    { NULL, NULL, 2, { d, b, 0 } },
    { "new", NULL, 0, { d, b, a, 0 } },
    { NULL, "support", 0, { d, c, a, 0 } },
    { "new", "support", 0, { d, a, 0 } },
    { "new", "support", 1, { d, 0 } },
    { "closed", NULL, 0, { 0 } },
    { NULL, "nobody", 0, { 0 } },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GPtrArray) tickets = tm_store_list_tickets (fixture->store, cases[i].status,
                                                             cases[i].queue, cases[i].limit, &error);
      g_assert_no_error (error);
      guint n = 0;
      while (cases[i].want[n] != 0)
        n++;
      if (tickets->len != n)
        g_error ("case %" G_GSIZE_FORMAT ": %u tickets, want %u", i, tickets->len, n);
      for (guint j = 0; j < n; j++)
        {
          const TmTicket *ticket = g_ptr_array_index (tickets, j);
          g_assert_cmpint (ticket->id, ==, cases[i].want[j]);
          g_assert_nonnull (ticket->tags);
        }
    }
  /* The readers work inside a transaction too, and see its writes. */
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_touch_ticket (fixture->store, a, 400, "closed", &error));
  g_autoptr (GPtrArray) closed = tm_store_list_tickets (fixture->store, "closed", NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (closed->len, ==, 1);
  tm_store_rollback (fixture->store);
}

static void
test_busy_database_fails_after_timeout (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmStoreOptions quick = { .busy_timeout_ms = 50, .create = FALSE };
  TmStore *blocker = tm_store_open (fixture->path, &quick, &error);
  g_assert_no_error (error);
  tm_store_close (&fixture->store);
  fixture->store = tm_store_open (fixture->path, &quick, &error);
  g_assert_no_error (error);

  g_assert_true (tm_store_begin (blocker, &error));
  gint64 started = g_get_monotonic_time ();
  g_assert_false (tm_store_begin (fixture->store, &error));
  gint64 waited_ms = (g_get_monotonic_time () - started) / 1000;
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_BUSY);
  g_clear_error (&error);
  /* It waited for the lock rather than failing at once, and not for long. */
  g_assert_cmpint (waited_ms, >=, 40);
  g_assert_cmpint (waited_ms, <, 5000);

  /* Readers are not blocked by a writer in WAL mode. */
  g_autoptr (GPtrArray) tickets = tm_store_list_tickets (fixture->store, NULL, NULL, 0, &error);
  g_assert_no_error (error);

  tm_store_rollback (blocker);
  tm_store_close (&blocker);
  /* The failed begin released the store: the next mail goes through. */
  g_assert_cmpint (create_ticket (fixture->store, "support", "new", 1), ==, 1);
}

enum { n_threads = 4, mails_per_thread = 200 };

typedef struct {
  TmStore *store;
  int thread;
  gint *failures;
} Worker;

static gpointer
worker_run (gpointer data)
{
  Worker *worker = data;
  for (int i = 0; i < mails_per_thread; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *key = g_strdup_printf ("mail-%d-%d@example.net", worker->thread, i);
      TmTicket ticket = ticket_template ("support", "new", i, NULL);
      gboolean ok = tm_store_begin (worker->store, &error);
      if (!ok)
        {
          g_printerr ("# begin: %s\n", error->message);
          g_atomic_int_inc (worker->failures);
          continue;
        }
      gint64 found = 0;
      ok = tm_store_find_message (worker->store, "support", key, &found, &error)
           && found == 0
           && tm_store_create_ticket (worker->store, &ticket, &error);
      TmStoredMessage message = message_template (ticket.id, "support", key, key, i);
      ok = ok && tm_store_add_message (worker->store, &message, &error)
           && tm_store_add_event (worker->store, ticket.id, message.id, "created", i, NULL, &error);
      if (ok)
        ok = tm_store_commit (worker->store, &error);
      else
        tm_store_rollback (worker->store);
      if (!ok)
        {
          g_printerr ("# mail %s: %s\n", key, error != NULL ? error->message : "duplicate");
          g_atomic_int_inc (worker->failures);
        }
    }
  return NULL;
}

static void
test_threads_share_one_store (Fixture *fixture, gconstpointer data)
{
  gint failures = 0;
  Worker workers[n_threads];
  GThread *threads[n_threads];
  for (int t = 0; t < n_threads; t++)
    {
      workers[t] = (Worker) { .store = fixture->store, .thread = t, .failures = &failures };
      threads[t] = g_thread_new ("store-worker", worker_run, &workers[t]);
    }
  for (int t = 0; t < n_threads; t++)
    g_thread_join (threads[t]);
  g_assert_cmpint (failures, ==, 0);
  int total = n_threads * mails_per_thread;
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, total);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(DISTINCT ticket_id) FROM messages"), ==, total);
  g_assert_cmpint (peek_int (fixture->path, "SELECT max(id) FROM tickets"), ==, total);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM message_ids"), ==, total);
}

/* ---- group commit ----------------------------------------------------- */

/* A second session's mail, run in a thread of its own while the test's own
 * mail holds the store. */
typedef struct {
  TmStore *store;
  gboolean roll_back;          /* fail its own mail instead of committing */
  gboolean fill_disk;          /* commit with the file size limit at the WAL's size */
  const char *wal_path;
  gboolean committed;
  char *error_message;         /* owned */
} SecondWriter;

static gpointer
second_writer_run (gpointer data)
{
  SecondWriter *writer = data;
  GError *error = NULL;
  TmTicket ticket = ticket_template ("second", "new", 2, NULL);
  if (!tm_store_begin (writer->store, &error))
    goto done;
  if (!tm_store_create_ticket (writer->store, &ticket, &error) || writer->roll_back)
    {
      tm_store_rollback (writer->store);
      goto done;
    }
  if (writer->fill_disk)
    {
      /* No room beyond what the WAL already holds: the batch's COMMIT
       * cannot append its frames, as on a full disk. */
      GStatBuf wal;
      g_assert_cmpint (g_stat (writer->wal_path, &wal), ==, 0);
      struct rlimit saved, tight;
      g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &saved), ==, 0);
      tight = (struct rlimit) { .rlim_cur = (rlim_t) wal.st_size, .rlim_max = saved.rlim_max };
      void (*old_handler) (int) = signal (SIGXFSZ, SIG_IGN);
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &tight), ==, 0);
      writer->committed = tm_store_commit (writer->store, &error);
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &saved), ==, 0);
      signal (SIGXFSZ, old_handler);
      goto done;
    }
  writer->committed = tm_store_commit (writer->store, &error);
done:
  if (error != NULL)
    writer->error_message = g_strdup (error->message);
  g_clear_error (&error);
  return NULL;
}

/* Waits until another thread is queued for the store's lock. */
static void
wait_for_queued_writer (TmStore *store)
{
  TmStoreGroupStats stats;
  for (int i = 0; i < 10000; i++)
    {
      tm_store_group_stats (store, &stats);
      if (stats.writers_waiting > 0)
        return;
      g_usleep (1000);
    }
  g_assert_not_reached ();
}

/* The test's mail is in its transaction; a second session's mail queues
 * behind it; then the test's mail commits. Returns what its commit said. */
static gboolean
commit_with_second_writer (Fixture *fixture, guint group_commit_max, SecondWriter *writer,
                           GError **error)
{
  tm_store_close (&fixture->store);
  TmStoreOptions options = default_options;
  options.group_commit_max = group_commit_max;
  fixture->store = tm_store_open (fixture->path, &options, error);
  g_assert_nonnull (fixture->store);
  writer->store = fixture->store;

  TmTicket ticket = ticket_template ("first", "new", 1, NULL);
  g_assert_true (tm_store_begin (fixture->store, error));
  g_assert_true (tm_store_create_ticket (fixture->store, &ticket, error));
  GThread *thread = g_thread_new ("second-writer", second_writer_run, writer);
  wait_for_queued_writer (fixture->store);
  gboolean committed = tm_store_commit (fixture->store, error);
  g_thread_join (thread);
  return committed;
}

static void
test_group_commit_shares_one_commit (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  SecondWriter writer = { 0 };
  g_assert_true (commit_with_second_writer (fixture, 64, &writer, &error));
  g_assert_no_error (error);
  g_assert_true (writer.committed);
  TmStoreGroupStats stats;
  tm_store_group_stats (fixture->store, &stats);
  g_assert_cmpint (stats.commits, ==, 1);
  g_assert_cmpint (stats.mails, ==, 2);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, 2);
  g_free (writer.error_message);
}

static void
test_group_commit_of_one (Fixture *fixture, gconstpointer data)
{
  /* group_commit = 1: the same two sessions, two commits. */
  g_autoptr (GError) error = NULL;
  SecondWriter writer = { 0 };
  g_assert_true (commit_with_second_writer (fixture, 1, &writer, &error));
  g_assert_true (writer.committed);
  TmStoreGroupStats stats;
  tm_store_group_stats (fixture->store, &stats);
  g_assert_cmpint (stats.commits, ==, 2);
  g_assert_cmpint (stats.mails, ==, 2);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, 2);
  g_free (writer.error_message);
}

static void
test_group_commit_rollback_keeps_the_others (Fixture *fixture, gconstpointer data)
{
  /* The second mail fails after the first has released its work into the
   * batch: only the second's ticket is undone. */
  g_autoptr (GError) error = NULL;
  SecondWriter writer = { .roll_back = TRUE };
  g_assert_true (commit_with_second_writer (fixture, 64, &writer, &error));
  g_assert_no_error (error);
  g_assert_false (writer.committed);
  TmStoreGroupStats stats;
  tm_store_group_stats (fixture->store, &stats);
  g_assert_cmpint (stats.commits, ==, 1);
  g_assert_cmpint (stats.mails, ==, 1);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, 1);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets WHERE queue = 'first'"), ==, 1);
  g_free (writer.error_message);
}

static void
test_group_commit_failure_fails_every_member (Fixture *fixture, gconstpointer data)
{
  /* The batch's COMMIT fails: both mails hear it (and the milter answers
   * tempfail for both), neither is stored, and the next mail goes through. */
  g_autoptr (GError) error = NULL;
  g_autofree char *wal_path = g_strconcat (fixture->path, "-wal", NULL);
  struct rlimit limit;
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &limit), ==, 0);
  if (limit.rlim_max != RLIM_INFINITY)
    {
      g_test_skip ("the file size limit cannot be raised back here");
      return;
    }
  SecondWriter writer = { .fill_disk = TRUE, .wal_path = wal_path };
  g_assert_false (commit_with_second_writer (fixture, 64, &writer, &error));
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  g_test_message ("the first mail heard: %s; the second: %s", error->message,
                  writer.error_message);
  g_assert_false (writer.committed);
  g_assert_nonnull (writer.error_message);
  g_assert_cmpstr (writer.error_message, ==, error->message);
  g_clear_error (&error);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, 0);
  g_assert_cmpint (create_ticket (fixture->store, "support", "new", 3), >, 0);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, 1);
  g_free (writer.error_message);
}

static void
test_group_commit_many_threads (Fixture *fixture, gconstpointer data)
{
  /* Many sessions at once, each mail committed exactly once; the count of
   * commits is reported, not asserted beyond its bounds (it depends on
   * timing). */
  tm_store_close (&fixture->store);
  TmStoreOptions options = default_options;
  options.group_commit_max = 64;
  options.synchronous_full = TRUE;
  g_autoptr (GError) error = NULL;
  fixture->store = tm_store_open (fixture->path, &options, &error);
  g_assert_no_error (error);
  test_threads_share_one_store (fixture, data);
  TmStoreGroupStats stats;
  tm_store_group_stats (fixture->store, &stats);
  g_test_message ("%" G_GINT64_FORMAT " mails in %" G_GINT64_FORMAT " commits",
                  stats.mails, stats.commits);
  g_assert_cmpint (stats.mails, ==, n_threads * mails_per_thread);
  g_assert_cmpint (stats.commits, >=, 1);
  g_assert_cmpint (stats.commits, <=, stats.mails);
  /* synchronous_full: each batch was synced before its members returned. */
  g_assert_cmpint (stats.wal_syncs, ==, stats.commits);
}

static void
test_synchronous_full_syncs_each_commit (Fixture *fixture, gconstpointer data)
{
  /* NORMAL (the fixture): no sync of our own; FULL: one per commit, and
   * one that was rolled back syncs nothing. */
  create_ticket (fixture->store, "support", "new", 1);
  TmStoreGroupStats stats;
  tm_store_group_stats (fixture->store, &stats);
  g_assert_cmpint (stats.commits, ==, 1);
  g_assert_cmpint (stats.wal_syncs, ==, 0);

  tm_store_close (&fixture->store);
  TmStoreOptions options = default_options;
  options.synchronous_full = TRUE;
  g_autoptr (GError) error = NULL;
  fixture->store = tm_store_open (fixture->path, &options, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 3; i++)
    create_ticket (fixture->store, "support", "new", 10 + i);
  g_assert_true (tm_store_begin (fixture->store, &error));
  tm_store_rollback (fixture->store);
  tm_store_group_stats (fixture->store, &stats);
  g_assert_cmpint (stats.commits, ==, 3);
  g_assert_cmpint (stats.wal_syncs, ==, 3);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, 4);

  /* An in-memory store has no file to sync. */
  TmStore *memory = tm_store_open (":memory:", &options, &error);
  g_assert_no_error (error);
  create_ticket (memory, "support", "new", 1);
  tm_store_group_stats (memory, &stats);
  g_assert_cmpint (stats.commits, ==, 1);
  g_assert_cmpint (stats.wal_syncs, ==, 0);
  tm_store_close (&memory);
}

/* ---- outbox ------------------------------------------------------------ */

static gint64
queue_outbox_mail (TmStore *store, gint64 ticket_id, const char *recipient)
{
  g_autoptr (GError) error = NULL;
  char data[] = "Subject: ack\r\n\r\nthanks\r\n";
  TmOutboxMail mail = {
    .ticket_id = ticket_id, .queue = (char *) "support", .kind = (char *) "ack",
    .sender = (char *) "", .recipient = (char *) recipient, .message_id = (char *) "ack@x",
    .data = data, .length = strlen (data), .created_at = 1, .queued_us = 1,
  };
  g_assert_true (tm_store_begin (store, &error));
  g_assert_true (tm_store_outbox_add (store, &mail, &error));
  g_assert_true (tm_store_commit (store, &error));
  g_assert_no_error (error);
  return mail.id;
}

static guint
interrupted_count (TmStore *store)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (tm_store_begin (store, &error));
  g_autoptr (GPtrArray) mails = tm_store_outbox_interrupted (store, &error);
  tm_store_rollback (store);
  g_assert_no_error (error);
  return mails->len;
}

static void
test_outbox_handing_over_mark (Fixture *fixture, gconstpointer data)
{
  /* The mark a worker commits before talking to the MTA: still there after
   * a restart means the delivery was interrupted; any outcome clears it. */
  g_autoptr (GError) error = NULL;
  gint64 ticket = create_ticket (fixture->store, "support", "new", 1);
  gint64 first = queue_outbox_mail (fixture->store, ticket, "a@example.net");
  gint64 second = queue_outbox_mail (fixture->store, ticket, "b@example.net");
  for (gint64 id = first; id <= second; id++)
    {
      g_assert_true (tm_store_begin (fixture->store, &error));
      g_assert_true (tm_store_outbox_mark_handing_over (fixture->store, id, 100, &error));
      g_assert_true (tm_store_commit (fixture->store, &error));
    }
  tm_store_close (&fixture->store);
  fixture->store = tm_store_open (fixture->path, &default_options, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (interrupted_count (fixture->store), ==, 2);

  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_outbox_mark_sent (fixture->store, first, 101, "250 ok", &error));
  g_assert_true (tm_store_outbox_clear_interrupted (fixture->store, second, "interrupted", &error));
  g_assert_true (tm_store_commit (fixture->store, &error));
  g_assert_cmpuint (interrupted_count (fixture->store), ==, 0);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM outbox WHERE status = 'pending'"
                            " AND last_result = 'interrupted'"), ==, 1);
  /* A mail no longer pending cannot be marked. */
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_false (tm_store_outbox_mark_handing_over (fixture->store, first, 102, &error));
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  tm_store_rollback (fixture->store);
}

/* ---- text ------------------------------------------------------------- */

static void
test_text_is_stored_verbatim (Fixture *fixture, gconstpointer data)
{
  const char *texts[] = {
    "'; DROP TABLE tickets; --",
    "\"double\" and 'single' quotes, a backslash \\ and 100% of %s",
    "فاتورة الشهر الماضي لم تصل — أرجو المساعدة",
    "سلام، صورتحساب من کجاست؟",
    "Robert'); DELETE FROM messages WHERE ('1' = '1",
    "?1 ?2 :name @x $y",
    "",
  };
  g_autoptr (GError) error = NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      char *text = (char *) texts[i];
      char *tags[] = { text[0] != '\0' ? text : (char *) "empty", NULL };
      TmTicket ticket = ticket_template (text, "new", 1, tags);
      ticket.customer_name = text;
      ticket.subject = text;
      ticket.team = text;
      g_autofree char *key = g_strdup_printf ("%s#%" G_GSIZE_FORMAT, text, i);
      g_assert_true (tm_store_begin (fixture->store, &error));
      g_assert_true (tm_store_create_ticket (fixture->store, &ticket, &error));
      TmStoredMessage message = message_template (ticket.id, text, key, key, 1);
      message.subject = text;
      message.body_text = text;
      message.from_name = text;
      g_assert_true (tm_store_add_message (fixture->store, &message, &error));
      g_assert_true (tm_store_add_event (fixture->store, ticket.id, message.id, "created", 1, text,
                                         &error));
      g_assert_true (tm_store_commit (fixture->store, &error));
      g_assert_no_error (error);

      g_autoptr (TmTicket) got = NULL;
      g_assert_true (tm_store_get_ticket (fixture->store, ticket.id, &got, &error));
      g_assert_cmpstr (got->queue, ==, text);
      g_assert_cmpstr (got->customer_name, ==, text);
      g_assert_cmpstr (got->subject, ==, text);
      g_assert_cmpstr (got->team, ==, text);
      g_assert_cmpstr (got->tags[0], ==, tags[0]);
      g_autoptr (GPtrArray) listed = tm_store_list_tickets (fixture->store, NULL, text, 0, &error);
      g_assert_cmpuint (listed->len, ==, 1);
      g_autoptr (GPtrArray) messages = tm_store_ticket_messages (fixture->store, ticket.id, &error);
      g_assert_no_error (error);
      const TmStoredMessage *stored = g_ptr_array_index (messages, 0);
      g_assert_cmpstr (stored->subject, ==, text);
      g_assert_cmpstr (stored->body_text, ==, text);
      g_assert_cmpstr (stored->message_key, ==, key);
      gint64 found = 0;
      g_assert_true (tm_store_begin (fixture->store, &error));
      g_assert_true (tm_store_find_ticket_by_message_id (fixture->store, text, key, &found, &error));
      tm_store_rollback (fixture->store);
      g_assert_cmpint (found, ==, ticket.id);
    }
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==,
                   (gint64) G_N_ELEMENTS (texts));
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM messages"), ==,
                   (gint64) G_N_ELEMENTS (texts));
}

/* ---- faults ----------------------------------------------------------- */

static void
test_file_size_limit_then_recovery (Fixture *fixture, gconstpointer data)
{
  /* A write the kernel refuses (RLIMIT_FSIZE holds even for root, unlike
   * file permissions) stands in for a full disk: the mail fails with an
   * error naming the operation, and once there is room again the same
   * connection takes the next mail. */
  g_autoptr (GError) error = NULL;
  create_ticket (fixture->store, "support", "new", 1);
  struct rlimit saved;
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &saved), ==, 0);
  GStatBuf db, wal;
  g_autofree char *wal_path = g_strconcat (fixture->path, "-wal", NULL);
  g_assert_cmpint (g_stat (fixture->path, &db), ==, 0);
  g_assert_cmpint (g_stat (wal_path, &wal), ==, 0);
  rlim_t room = (rlim_t) MAX (db.st_size, wal.st_size) + 16384;
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < room)
    {
      g_test_skip ("the file size limit is already below the database size");
      return;
    }
  struct rlimit tight = { .rlim_cur = room, .rlim_max = saved.rlim_max };
  void (*old_handler) (int) = signal (SIGXFSZ, SIG_IGN);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &tight), ==, 0);

  GString *big = g_string_sized_new (4 << 20);
  for (int i = 0; i < (4 << 20) / 64; i++)
    g_string_append (big, "a long mail body line that will not fit on this small disk....\n");
  TmTicket ticket = ticket_template ("support", "new", 2, NULL);
  gboolean ok = tm_store_begin (fixture->store, &error)
                && tm_store_create_ticket (fixture->store, &ticket, &error);
  TmStoredMessage message = message_template (ticket.id, "support", "big@x", "big@x", 2);
  message.body_text = big->str;
  if (ok)
    {
      if (tm_store_add_message (fixture->store, &message, &error))
        ok = tm_store_commit (fixture->store, &error);
      else
        {
          ok = FALSE;
          tm_store_rollback (fixture->store);
        }
    }
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &saved), ==, 0);
  signal (SIGXFSZ, old_handler);
  g_string_free (big, TRUE);

  g_assert_false (ok);
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  g_test_message ("the refused write said: %s", error->message);
  g_assert_true (g_str_has_prefix (error->message, "insert message: ")
                 || g_str_has_prefix (error->message, "commit: "));
  g_clear_error (&error);

  /* Nothing of the failed mail is left, and the next one is stored. */
  gint64 found = -1;
  g_assert_true (tm_store_begin (fixture->store, &error));
  g_assert_true (tm_store_find_message (fixture->store, "support", "big@x", &found, &error));
  tm_store_rollback (fixture->store);
  g_assert_cmpint (found, ==, 0);
  g_assert_cmpint (create_ticket (fixture->store, "support", "new", 3), >, 1);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, 2);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM messages"), ==, 0);
}

/* Sets or clears the immutable attribute (chattr +i), which refuses writes
 * even to root. FALSE when the system or filesystem does not allow it. */
static gboolean
set_immutable (const char *path, gboolean immutable)
{
#if defined (FS_IOC_GETFLAGS) && defined (FS_IOC_SETFLAGS) && defined (FS_IMMUTABLE_FL)
  int fd = open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return FALSE;
  int flags = 0;
  gboolean ok = ioctl (fd, FS_IOC_GETFLAGS, &flags) == 0;
  if (ok)
    {
      flags = immutable ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
      ok = ioctl (fd, FS_IOC_SETFLAGS, &flags) == 0;
    }
  close (fd);
  return ok;
#else
  return FALSE;
#endif
}

static void
test_write_refused_then_recovery (Fixture *fixture, gconstpointer data)
{
  /* The files turn unwritable under a running store (a filesystem gone
   * read-only, an admin's chattr): the commit fails with an error, and once
   * they are writable again the same connection takes the next mail. The
   * -shm file is left alone: SQLite maps it, and a mapping that cannot be
   * written is a SIGBUS, not an error. */
  g_autoptr (GError) error = NULL;
  create_ticket (fixture->store, "support", "new", 1);
  g_autofree char *wal_path = g_strconcat (fixture->path, "-wal", NULL);
  if (!set_immutable (fixture->path, TRUE))
    {
      g_test_skip ("cannot set the immutable attribute here (needs CAP_LINUX_IMMUTABLE)");
      return;
    }
  gboolean wal_locked = set_immutable (wal_path, TRUE);

  TmTicket ticket = ticket_template ("support", "new", 2, NULL);
  gboolean ok = wal_locked && tm_store_begin (fixture->store, &error);
  if (ok)
    {
      if (tm_store_create_ticket (fixture->store, &ticket, &error))
        ok = tm_store_commit (fixture->store, &error);
      else
        {
          ok = FALSE;
          tm_store_rollback (fixture->store);
        }
    }
  /* Writable again before any assertion, so that the fixture can clean up. */
  set_immutable (wal_path, FALSE);
  set_immutable (fixture->path, FALSE);
  if (!wal_locked)
    {
      g_test_skip ("cannot set the immutable attribute on the WAL file");
      return;
    }

  g_assert_false (ok);
  g_assert_error (error, TM_STORE_ERROR, TM_STORE_ERROR_FAILED);
  g_test_message ("the refused write said: %s", error->message);
  g_clear_error (&error);
  g_assert_cmpint (create_ticket (fixture->store, "support", "new", 3), >, 1);
  g_assert_cmpint (peek_int (fixture->path, "SELECT count(*) FROM tickets"), ==, 2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, function) \
  g_test_add (path, Fixture, NULL, fixture_set_up, function, fixture_tear_down)
  ADD ("/store/open/reopen-keeps-data", test_reopen_keeps_data);
  ADD ("/store/open/schema-version-is-set", test_schema_version_is_set);
  ADD ("/store/open/newer-schema-is-refused", test_newer_schema_is_refused);
  ADD ("/store/open/missing-file-without-create", test_missing_file_without_create);
  ADD ("/store/open/not-a-database", test_not_a_database);
  ADD ("/store/open/journal-mode-is-wal", test_journal_mode_is_wal);
  g_test_add_func ("/store/open/in-memory", test_in_memory);
  ADD ("/store/ticket/round-trip-with-tags", test_ticket_round_trip_with_tags);
  ADD ("/store/ticket/missing-is-not-an-error", test_missing_ticket_is_not_an_error);
  ADD ("/store/ticket/ids-never-reused", test_ids_never_reused);
  ADD ("/store/ticket/touch", test_touch_ticket);
  ADD ("/store/ticket/invalid-status-is-an-error", test_invalid_status_is_an_error);
  ADD ("/store/message/add-and-find", test_add_message_and_find_it);
  ADD ("/store/message/without-message-id", test_message_without_message_id);
  ADD ("/store/message/duplicate-key-fails", test_duplicate_message_key_fails);
  ADD ("/store/message/remember-message-id", test_remember_message_id);
  ADD ("/store/message/oldest-first-with-attachments", test_ticket_messages_oldest_first);
  ADD ("/store/event/recorded", test_events_are_recorded);
  ADD ("/store/transaction/rollback-discards", test_rollback_discards);
  ADD ("/store/transaction/busy-fails-after-timeout", test_busy_database_fails_after_timeout);
  ADD ("/store/transaction/threads-share-one-store", test_threads_share_one_store);
  ADD ("/store/transaction/group-commit/shares-one-commit", test_group_commit_shares_one_commit);
  ADD ("/store/transaction/group-commit/of-one", test_group_commit_of_one);
  ADD ("/store/transaction/group-commit/rollback-keeps-the-others",
       test_group_commit_rollback_keeps_the_others);
  ADD ("/store/transaction/group-commit/failure-fails-every-member",
       test_group_commit_failure_fails_every_member);
  ADD ("/store/transaction/group-commit/many-threads", test_group_commit_many_threads);
  ADD ("/store/transaction/synchronous-full-syncs-each-commit", test_synchronous_full_syncs_each_commit);
  ADD ("/store/outbox/handing-over-mark", test_outbox_handing_over_mark);
  ADD ("/store/list/filters-and-order", test_list_filters_and_order);
  ADD ("/store/text/stored-verbatim", test_text_is_stored_verbatim);
  ADD ("/store/fault/file-size-limit-then-recovery", test_file_size_limit_then_recovery);
  ADD ("/store/fault/write-refused-then-recovery", test_write_refused_then_recovery);
#undef ADD
  return g_test_run ();
}
