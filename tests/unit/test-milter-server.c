/* test-milter-server.c - the milter protocol as an MTA sees it.
 *
 * Each test starts a TmMilterServer on a unix socket in a temporary
 * directory, runs tm_milter_server_run() in a thread of its own, connects
 * with a plain AF_UNIX socket and speaks the protocol byte by byte as
 * Postfix does: a 4-byte length in network order (counting the command
 * byte), the command byte, the data. The packets the test sends and the
 * replies it expects are written out here by hand, not made with
 * milter_wire.c, so that a mistake shared by both directions shows.
 *
 * The filter is a set of recording callbacks: every call becomes one line
 * in the Recorder ("mail <a@example.org> SIZE=12", "close conn1", ...),
 * with the macros a test asks about appended ("mail <a@x> | i=Q1 j=NULL").
 * A test compares those lines after tm_milter_server_stop() and the run
 * thread's return, when every session has ended.
 *
 * Nothing can hang the suite: every read of the client waits at most
 * DEADLINE_MS (poll), and the run thread must return within DEADLINE_MS of
 * the stop.
 */
#include "milter_server.h"
#include "tm-test.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEADLINE_MS 10000

/* What Postfix 3 offers: protocol 6, every action and every step. */
#define POSTFIX_VERSION 6
#define POSTFIX_ACTIONS 0x1ffu
#define POSTFIX_STEPS 0x1fffffu

/* The steps a filter agrees to answer without a reply. */
#define ALL_NO_REPLY                                                                        \
  (TM_MILTER_NO_REPLY_CONNECT | TM_MILTER_NO_REPLY_HELO | TM_MILTER_NO_REPLY_MAIL           \
   | TM_MILTER_NO_REPLY_RCPT | TM_MILTER_NO_REPLY_DATA | TM_MILTER_NO_REPLY_UNKNOWN         \
   | TM_MILTER_NO_REPLY_EOH | TM_MILTER_NO_REPLY_BODY | TM_MILTER_NO_REPLY_HEADER)

/* --- the recording filter ------------------------------------------------------ */

typedef struct {
  /* What the filter does; set by the test before it connects. */
  guint32 want_actions;
  guint32 want_steps;
  const char *macro_lists[TM_MILTER_STAGES];   /* requested in negotiate */
  const char *const *probe;                    /* macros looked up in each callback */
  TmMilterVerdict verdict;                     /* end of message's answer */
  TmMilterVerdict (*on_end_of_message) (TmMilterSession *session);  /* instead */
  /* After recording: with the address, or the header's name. */
  void (*on_mail) (TmMilterSession *session, const char *address);
  void (*on_header) (TmMilterSession *session, const char *name);
  gboolean block_end_of_message;               /* wait for recorder_release() */

  /* What the filter saw; under LOCK. */
  GMutex lock;
  GCond changed;
  GPtrArray *events;
  int negotiations;
  int closes;
  guint32 steps_at_mail;                       /* tm_milter_session_steps() */
  gboolean in_end_of_message;
  gboolean released;
} Recorder;

static Recorder recorder;

static void recorder_clear (void);

static void
recorder_reset (void)
{
  if (recorder.events != NULL)
    recorder_clear ();
  memset (&recorder, 0, sizeof recorder);
  g_mutex_init (&recorder.lock);
  g_cond_init (&recorder.changed);
  recorder.events = g_ptr_array_new_with_free_func (g_free);
  recorder.verdict = TM_MILTER_CONTINUE;
}

static void
recorder_clear (void)
{
  g_clear_pointer (&recorder.events, g_ptr_array_unref);
  g_mutex_clear (&recorder.lock);
  g_cond_clear (&recorder.changed);
}

/* LINE plus, when the test asked, " | NAME=VALUE ..." for its macros. */
static void
record (TmMilterSession *session, GString *line)
{
  if (recorder.probe != NULL && session != NULL)
    {
      g_string_append (line, " |");
      for (const char *const *name = recorder.probe; *name != NULL; name++)
        {
          const char *value = tm_milter_session_macro (session, *name);
          g_string_append_printf (line, " %s=%s", *name, value != NULL ? value : "NULL");
        }
    }
  g_mutex_lock (&recorder.lock);
  g_ptr_array_add (recorder.events, g_string_free (line, FALSE));
  g_cond_broadcast (&recorder.changed);
  g_mutex_unlock (&recorder.lock);
}

static void
record_arguments (TmMilterSession *session, const char *what, const char *const *arguments,
                  int count)
{
  GString *line = g_string_new (what);
  for (int i = 0; i < count; i++)
    g_string_append_printf (line, " %s", arguments[i]);
  record (session, line);
}

static void
on_negotiate (TmMilterSession *session, guint32 offered_actions, guint32 offered_steps,
              guint32 *actions, guint32 *steps)
{
  g_assert_null (tm_milter_session_get_data (session));
  /* Nothing to modify outside end of message. */
  g_assert_false (tm_milter_session_add_header (session, "X-No", "no"));
  g_mutex_lock (&recorder.lock);
  int number = ++recorder.negotiations;
  g_mutex_unlock (&recorder.lock);
  tm_milter_session_set_data (session, g_strdup_printf ("conn%d", number));
  *actions = recorder.want_actions;
  *steps = recorder.want_steps;
  for (int stage = 0; stage < TM_MILTER_STAGES; stage++)
    if (recorder.macro_lists[stage] != NULL)
      tm_milter_session_request_macros (session, (TmMilterStage) stage,
                                        recorder.macro_lists[stage]);
  GString *line = g_string_new (NULL);
  g_string_printf (line, "negotiate 0x%x 0x%x", offered_actions, offered_steps);
  record (NULL, line);
}

static void
on_mail (TmMilterSession *session, const char *const *arguments, int count)
{
  g_mutex_lock (&recorder.lock);
  recorder.steps_at_mail = tm_milter_session_steps (session);
  g_mutex_unlock (&recorder.lock);
  record_arguments (session, "mail", arguments, count);
  if (recorder.on_mail != NULL)
    recorder.on_mail (session, arguments[0]);
}

static void
on_recipient (TmMilterSession *session, const char *const *arguments, int count)
{
  record_arguments (session, "rcpt", arguments, count);
}

static void
on_header (TmMilterSession *session, const char *name, const char *value)
{
  GString *line = g_string_new (NULL);
  g_string_printf (line, "header %s=[%s]", name, value);
  record (session, line);
  if (recorder.on_header != NULL)
    recorder.on_header (session, name);
}

static void
on_end_of_headers (TmMilterSession *session)
{
  record (session, g_string_new ("eoh"));
}

static void
on_body (TmMilterSession *session, const guint8 *chunk, gsize length)
{
  GString *line = g_string_new (NULL);
  g_string_printf (line, "body %zu [", length);
  if (length <= 64)
    for (gsize i = 0; i < length; i++)
      if (g_ascii_isprint (chunk[i]) && chunk[i] != '\\')
        g_string_append_c (line, (char) chunk[i]);
      else
        g_string_append_printf (line, "\\x%02x", chunk[i]);
  else
    {
      g_autofree char *sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, chunk, length);
      g_string_append_printf (line, "sha256:%s", sum);
    }
  g_string_append_c (line, ']');
  record (session, line);
}

static TmMilterVerdict
on_end_of_message (TmMilterSession *session)
{
  record (session, g_string_new ("eom"));
  if (recorder.block_end_of_message)
    {
      g_mutex_lock (&recorder.lock);
      recorder.in_end_of_message = TRUE;
      g_cond_broadcast (&recorder.changed);
      while (!recorder.released)
        g_cond_wait (&recorder.changed, &recorder.lock);
      g_mutex_unlock (&recorder.lock);
    }
  if (recorder.on_end_of_message != NULL)
    return recorder.on_end_of_message (session);
  return recorder.verdict;
}

static void
on_abort (TmMilterSession *session)
{
  record (session, g_string_new ("abort"));
}

static void
on_close (TmMilterSession *session)
{
  char *data = tm_milter_session_get_data (session);
  GString *line = g_string_new (NULL);
  g_string_printf (line, "close %s", data != NULL ? data : "(none)");
  /* Not cleared here: the server forgets it (negotiate checks). */
  g_free (data);
  g_mutex_lock (&recorder.lock);
  recorder.closes++;
  g_mutex_unlock (&recorder.lock);
  record (NULL, line);
}

static const TmMilterCallbacks recording_callbacks = {
  .negotiate = on_negotiate,
  .mail = on_mail,
  .recipient = on_recipient,
  .header = on_header,
  .end_of_headers = on_end_of_headers,
  .body = on_body,
  .end_of_message = on_end_of_message,
  .abort = on_abort,
  .close = on_close,
};

/* A filter with no callbacks at all. */
static const TmMilterCallbacks no_callbacks = { 0 };

/* The events so far are exactly EXPECTED (NULL-terminated). Called after
 * test_server_stop(), when no session is left. */
static void
assert_events (const char *const *expected)
{
  g_mutex_lock (&recorder.lock);
  guint count = g_strv_length ((char **) expected);
  for (guint i = 0; i < MIN (count, recorder.events->len); i++)
    g_assert_cmpstr (g_ptr_array_index (recorder.events, i), ==, expected[i]);
  if (recorder.events->len != count)
    {
      for (guint i = 0; i < recorder.events->len; i++)
        g_test_message ("event %u: %s", i, (char *) g_ptr_array_index (recorder.events, i));
      g_assert_cmpuint (recorder.events->len, ==, count);
    }
  g_mutex_unlock (&recorder.lock);
}

/* Whether an event equal to EVENT, or starting with PREFIX, was recorded. */
static gboolean
find_event (const char *event, gboolean prefix)
{
  g_mutex_lock (&recorder.lock);
  gboolean found = FALSE;
  for (guint i = 0; i < recorder.events->len && !found; i++)
    {
      const char *recorded = g_ptr_array_index (recorder.events, i);
      found = prefix ? g_str_has_prefix (recorded, event) : strcmp (recorded, event) == 0;
    }
  g_mutex_unlock (&recorder.lock);
  return found;
}

static gboolean
has_event (const char *event)
{
  return find_event (event, FALSE);
}

static gboolean
has_event_prefix (const char *prefix)
{
  return find_event (prefix, TRUE);
}

static void
wait_for_end_of_message (void)
{
  gint64 deadline = g_get_monotonic_time () + DEADLINE_MS * G_TIME_SPAN_MILLISECOND;
  g_mutex_lock (&recorder.lock);
  while (!recorder.in_end_of_message)
    g_assert_true (g_cond_wait_until (&recorder.changed, &recorder.lock, deadline));
  g_mutex_unlock (&recorder.lock);
}

static void
recorder_release (void)
{
  g_mutex_lock (&recorder.lock);
  recorder.released = TRUE;
  g_cond_broadcast (&recorder.changed);
  g_mutex_unlock (&recorder.lock);
}

/* --- the server in a thread ------------------------------------------------------ */

typedef struct {
  char *directory;
  char *path;              /* DIRECTORY/milter.sock */
  TmMilterServer *server;
  const TmMilterCallbacks *callbacks;
  GThread *thread;
  GMutex lock;
  GCond returned_cond;
  gboolean returned;       /* under LOCK */
  gboolean run_result;
  GError *run_error;
} TestServer;

static gpointer
server_thread (gpointer data)
{
  TestServer *test = data;
  GError *error = NULL;
  gboolean result = tm_milter_server_run (test->server, test->callbacks, &error);
  g_mutex_lock (&test->lock);
  test->run_result = result;
  test->run_error = error;
  test->returned = TRUE;
  g_cond_broadcast (&test->returned_cond);
  g_mutex_unlock (&test->lock);
  return NULL;
}

/* A server on a new socket, serving CALLBACKS; MAX_PACKET 0 keeps the
 * default. */
static void
test_server_start (TestServer *test, const TmMilterCallbacks *callbacks, gsize max_packet)
{
  memset (test, 0, sizeof *test);
  g_autoptr (GError) error = NULL;
  test->directory = g_dir_make_tmp ("tm-milter-XXXXXX", &error);
  g_assert_no_error (error);
  test->path = g_build_filename (test->directory, "milter.sock", NULL);
  g_autofree char *spec = g_strconcat ("unix:", test->path, NULL);
  test->server = tm_milter_server_new (spec, &error);
  g_assert_no_error (error);
  g_assert_nonnull (test->server);
  if (max_packet > 0)
    tm_milter_server_set_max_packet (test->server, max_packet);
  test->callbacks = callbacks;
  g_mutex_init (&test->lock);
  g_cond_init (&test->returned_cond);
  test->thread = g_thread_new ("milter-server", server_thread, test);
}

/* Whether tm_milter_server_run() has returned, waiting up to WAIT_MS. */
static gboolean
test_server_returned (TestServer *test, int wait_ms)
{
  gint64 deadline = g_get_monotonic_time () + wait_ms * G_TIME_SPAN_MILLISECOND;
  g_mutex_lock (&test->lock);
  while (!test->returned && g_cond_wait_until (&test->returned_cond, &test->lock, deadline))
    ;
  gboolean returned = test->returned;
  g_mutex_unlock (&test->lock);
  return returned;
}

/* Waits for run() to return (after a stop already made) and cleans up. */
static void
test_server_finish (TestServer *test)
{
  g_assert_true (test_server_returned (test, DEADLINE_MS));
  g_thread_join (test->thread);
  g_assert_no_error (test->run_error);
  g_assert_true (test->run_result);
  tm_milter_server_free (&test->server);
  g_assert_null (test->server);
  /* The socket file stays behind. */
  g_assert_true (g_file_test (test->path, G_FILE_TEST_EXISTS));
  tm_test_remove_directory (test->directory);
  g_free (test->directory);
  g_free (test->path);
  g_mutex_clear (&test->lock);
  g_cond_clear (&test->returned_cond);
}

static void
test_server_stop (TestServer *test)
{
  tm_milter_server_stop (test->server);
  test_server_finish (test);
}

/* --- the MTA's side ------------------------------------------------------------------ */

static int
client_connect (TestServer *test)
{
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (fd, >=, 0);
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  g_assert_cmpuint (strlen (test->path), <, sizeof address.sun_path);
  strcpy (address.sun_path, test->path);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &address, sizeof address), ==, 0);
  return fd;
}

static void
client_send (int fd, const void *bytes, gsize length)
{
  gsize sent = 0;
  while (sent < length)
    {
      ssize_t n = send (fd, (const guint8 *) bytes + sent, length - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      g_assert_cmpint (n, >, 0);
      sent += (gsize) n;
    }
}

static void
client_send_bytes (int fd, const GByteArray *bytes)
{
  client_send (fd, bytes->data, bytes->len);
}

/* Appends one packet as the MTA writes it: length (data + 1) in network
 * order, command, data. */
static void
put_packet (GByteArray *out, char command, const void *data, gsize length)
{
  guint32 wire = (guint32) length + 1;
  guint8 header[5] = { (guint8) (wire >> 24), (guint8) (wire >> 16), (guint8) (wire >> 8),
                       (guint8) wire, (guint8) command };
  g_byte_array_append (out, header, 5);
  if (length > 0)
    g_byte_array_append (out, data, (guint) length);
}

/* A packet whose data is STRINGS... (NULL-terminated), each with its NUL,
 * after PREFIX (PREFIX_LENGTH bytes, e.g. the command letter of a 'D'). */
static void
put_strings_after (GByteArray *out, char command, const void *prefix, gsize prefix_length,
                   va_list args)
{
  g_autoptr (GByteArray) data = g_byte_array_new ();
  if (prefix_length > 0)
    g_byte_array_append (data, prefix, (guint) prefix_length);
  for (const char *s; (s = va_arg (args, const char *)) != NULL;)
    g_byte_array_append (data, (const guint8 *) s, (guint) strlen (s) + 1);
  put_packet (out, command, data->data, data->len);
}

/* (COMMAND is an int: va_start needs a parameter that is not promoted.) */
static void
put_strings (GByteArray *out, int command, ...)
{
  va_list args;
  va_start (args, command);
  put_strings_after (out, (char) command, NULL, 0, args);
  va_end (args);
}

/* 'D': macros NAME, VALUE, ... for the step of command STEP. */
static void
put_macros (GByteArray *out, int step, ...)
{
  va_list args;
  va_start (args, step);
  char letter = (char) step;
  put_strings_after (out, 'D', &letter, 1, args);
  va_end (args);
}

static void
put_uint32 (GByteArray *out, guint32 value)
{
  guint8 bytes[4] = { (guint8) (value >> 24), (guint8) (value >> 16), (guint8) (value >> 8),
                      (guint8) value };
  g_byte_array_append (out, bytes, 4);
}

static void
put_negotiate (GByteArray *out, guint32 version, guint32 actions, guint32 steps)
{
  g_autoptr (GByteArray) data = g_byte_array_new ();
  put_uint32 (data, version);
  put_uint32 (data, actions);
  put_uint32 (data, steps);
  put_packet (out, 'O', data->data, data->len);
}

/* The filter's negotiation reply without macro lists. */
static void
put_negotiate_reply (GByteArray *out, guint32 version, guint32 actions, guint32 steps)
{
  put_negotiate (out, version, actions, steps);
}

/* What Postfix sends for a connection up to the DATA command: the connect
 * step ('C': host name, family '4', port, address) and HELO, each with its
 * macros. */
static void
put_connect_and_helo (GByteArray *out)
{
  put_macros (out, 'C', "j", "mx.example.org", "{daemon_name}", "smtpd", NULL);
  static const char connect_data[] = "client.example.net\0" "4\x00\x19" "192.0.2.7";
  put_packet (out, 'C', connect_data, sizeof connect_data);
  put_macros (out, 'H', "{tls_version}", "TLSv1.3", NULL);
  put_strings (out, 'H', "client.example.net", NULL);
}

/* Whether FD becomes readable (data or end of stream) within TIMEOUT_MS. */
static gboolean
client_wait (int fd, int timeout_ms)
{
  struct pollfd poll_fd = { .fd = fd, .events = POLLIN };
  int ready;
  do
    ready = poll (&poll_fd, 1, timeout_ms);
  while (ready < 0 && errno == EINTR);
  return ready > 0;
}

/* Reads exactly LENGTH bytes into BUFFER; FALSE on end of stream first.
 * Fails the test when nothing comes for DEADLINE_MS. */
static gboolean
client_read (int fd, guint8 *buffer, gsize length)
{
  gsize got = 0;
  while (got < length)
    {
      if (!client_wait (fd, DEADLINE_MS))
        g_error ("no reply from the filter within %d ms (%zu of %zu bytes)", DEADLINE_MS, got,
                 length);
      ssize_t n = recv (fd, buffer + got, length - got, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      got += (gsize) n;
    }
  return TRUE;
}

/* The next bytes from the filter are exactly EXPECTED. */
static void
client_expect (int fd, const GByteArray *expected)
{
  g_autofree guint8 *buffer = g_malloc (expected->len + 1);
  g_assert_true (client_read (fd, buffer, expected->len));
  g_assert_cmpmem (buffer, expected->len, expected->data, expected->len);
}

/* The next reply is the packet COMMAND with no data. */
static void
client_expect_simple (int fd, char command)
{
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_packet (expected, command, NULL, 0);
  client_expect (fd, expected);
}

/* Everything the filter sends until it closes the connection: reads until
 * end of stream, failing the test when that does not come within
 * DEADLINE_MS. */
static GByteArray *
client_read_to_end (int fd)
{
  GByteArray *all = g_byte_array_new ();
  for (;;)
    {
      if (!client_wait (fd, DEADLINE_MS))
        g_error ("the filter did not close the connection within %d ms", DEADLINE_MS);
      guint8 buffer[4096];
      ssize_t n = recv (fd, buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == ECONNRESET)
        break;
      g_assert_cmpint (n, >=, 0);
      if (n == 0)
        break;
      g_byte_array_append (all, buffer, (guint) n);
    }
  return all;
}

/* The filter sends EXPECTED (may be empty) and then closes. */
static void
client_expect_end (int fd, const GByteArray *expected)
{
  g_autoptr (GByteArray) all = client_read_to_end (fd);
  if (expected != NULL)
    g_assert_cmpmem (all->data, all->len, expected->data, expected->len);
  else
    g_assert_cmpuint (all->len, ==, 0);
}

/* The filter sends nothing at all within WAIT_MS (and keeps the
 * connection). */
static void
client_expect_silence (int fd, int wait_ms)
{
  g_assert_false (client_wait (fd, wait_ms));
}

/* Connects and negotiates as Postfix does; the filter's reply must be
 * EXPECTED_REPLY (NULL: not read). */
static int
client_connect_negotiated (TestServer *test, const GByteArray *expected_reply)
{
  int fd = client_connect (test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  client_send_bytes (fd, out);
  if (expected_reply != NULL)
    client_expect (fd, expected_reply);
  return fd;
}

/* --- negotiation ------------------------------------------------------------------ */

static void
test_negotiate_masks_to_offered (void)
{
  recorder_reset ();
  /* The filter wants more than the MTA offers. */
  recorder.want_actions = TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_ADD_RECIPIENTS
                          | TM_MILTER_ACTION_CHANGE_HEADERS | TM_MILTER_ACTION_QUARANTINE;
  recorder.want_steps = TM_MILTER_NO_REPLY_MAIL | TM_MILTER_NO_REPLY_HEADER | TM_MILTER_SKIP_BODY
                        | TM_MILTER_HEADER_LEADING_SPACE;
  /* Lists asked for without the action to send them: none sent. */
  recorder.macro_lists[TM_MILTER_STAGE_MAIL] = "i";
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);

  int fd = client_connect (&test);
  guint32 offered_actions = TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_CHANGE_HEADERS
                            | TM_MILTER_ACTION_CHANGE_BODY | TM_MILTER_ACTION_SET_MACRO_LIST;
  guint32 offered_steps = TM_MILTER_NO_REPLY_MAIL | TM_MILTER_SKIP_BODY | TM_MILTER_NO_REPLY_RCPT;
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, 6, offered_actions, offered_steps);
  put_strings (out, 'M', "<a@example.org>", NULL);
  client_send_bytes (fd, out);

  static const guint8 expected[] = {
    0, 0, 0, 13, 'O',
    0, 0, 0, 6,
    0, 0, 0, 0x11,          /* ADD_HEADERS | CHANGE_HEADERS */
    0, 0, 0x40, 0x10,       /* NO_REPLY_MAIL | SKIP_BODY */
  };
  g_autoptr (GByteArray) expected_reply = g_byte_array_new ();
  g_byte_array_append (expected_reply, expected, sizeof expected);
  /* MAIL was agreed without a reply: then the quit, and nothing else. */
  g_byte_array_set_size (out, 0);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_end (fd, expected_reply);
  close (fd);
  test_server_stop (&test);

  g_assert_cmphex (recorder.steps_at_mail, ==, TM_MILTER_NO_REPLY_MAIL | TM_MILTER_SKIP_BODY);
  g_autofree char *negotiated = g_strdup_printf ("negotiate 0x%x 0x%x", offered_actions,
                                                 offered_steps);
  const char *events[] = { negotiated, "mail <a@example.org>", "close conn1", NULL };
  assert_events (events);
  recorder_clear ();
}

static void
test_negotiate_version (void)
{
  /* The reply's version is the lower of the MTA's and 6; below 2 is
   * refused. */
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  static const guint32 versions[] = { 2, 3, 6, 7, 0x7fffffff };
  for (gsize i = 0; i < G_N_ELEMENTS (versions); i++)
    {
      int fd = client_connect (&test);
      g_autoptr (GByteArray) out = g_byte_array_new ();
      put_negotiate (out, versions[i], POSTFIX_ACTIONS, POSTFIX_STEPS);
      client_send_bytes (fd, out);
      g_autoptr (GByteArray) expected = g_byte_array_new ();
      put_negotiate_reply (expected, MIN (versions[i], 6), 0, 0);
      client_expect (fd, expected);
      close (fd);
    }
  for (guint32 version = 0; version < 2; version++)
    {
      int fd = client_connect (&test);
      g_autoptr (GByteArray) out = g_byte_array_new ();
      put_negotiate (out, version, POSTFIX_ACTIONS, POSTFIX_STEPS);
      client_send_bytes (fd, out);
      client_expect_end (fd, NULL);
      close (fd);
    }
  test_server_stop (&test);
  /* The refused ones never reached the filter's negotiate, but close is
   * called for every connection. */
  g_assert_cmpint (recorder.negotiations, ==, 5);
  g_assert_cmpint (recorder.closes, ==, 7);
  recorder_clear ();
}

static void
test_negotiate_macro_lists (void)
{
  recorder_reset ();
  recorder.want_actions = TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_SET_MACRO_LIST;
  recorder.want_steps = 0;
  recorder.macro_lists[TM_MILTER_STAGE_MAIL] = "i {auth_authen}";
  recorder.macro_lists[TM_MILTER_STAGE_EOM] = "i";
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);

  static const guint8 expected[] = {
    0, 0, 0, 39, 'O',
    0, 0, 0, 6,
    0, 0, 0x01, 0x01,
    0, 0, 0, 0,
    0, 0, 0, 2, 'i', ' ', '{', 'a', 'u', 't', 'h', '_', 'a', 'u', 't', 'h', 'e', 'n', '}', 0,
    0, 0, 0, 5, 'i', 0,
  };
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  g_byte_array_append (reply, expected, sizeof expected);
  int fd = client_connect_negotiated (&test, reply);

  /* A second negotiation on the same connection ("quit, new connection
   * follows") asks again: the same lists, not twice. */
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_packet (out, 'K', NULL, 0);
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  client_send_bytes (fd, out);
  client_expect (fd, reply);

  /* An MTA that does not offer SET_MACRO_LIST gets no lists. */
  g_byte_array_set_size (out, 0);
  put_packet (out, 'K', NULL, 0);
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS & ~TM_MILTER_ACTION_SET_MACRO_LIST,
                 POSTFIX_STEPS);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) without_lists = g_byte_array_new ();
  put_negotiate_reply (without_lists, 6, TM_MILTER_ACTION_ADD_HEADERS, 0);
  client_expect (fd, without_lists);
  close (fd);

  /* A filter that does not want SET_MACRO_LIST sends none either, though
   * offered and though it asked for lists. */
  recorder.want_actions = TM_MILTER_ACTION_ADD_HEADERS;
  g_autoptr (GByteArray) plain = g_byte_array_new ();
  put_negotiate_reply (plain, 6, TM_MILTER_ACTION_ADD_HEADERS, 0);
  fd = client_connect_negotiated (&test, plain);
  close (fd);

  test_server_stop (&test);
  g_assert_cmpint (recorder.negotiations, ==, 4);
  g_assert_cmpint (recorder.closes, ==, 4);
  recorder_clear ();
}

static void
test_negotiate_without_callbacks (void)
{
  /* No negotiate callback: nothing asked for; every step answered
   * "continue", end of message too. */
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &no_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_connect_and_helo (out);
  put_strings (out, 'M', "<a@example.org>", NULL);
  put_strings (out, 'R', "<b@example.org>", NULL);
  put_packet (out, 'T', NULL, 0);
  put_strings (out, 'L', "Subject", "hi", NULL);
  put_packet (out, 'N', NULL, 0);
  put_packet (out, 'B', "body\r\n", 6);
  put_packet (out, 'E', NULL, 0);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);

  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6, 0, 0);
  for (int i = 0; i < 9; i++)   /* C H M R T L N B E */
    put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  recorder_clear ();
}

static void
test_negotiate_short_packet (void)
{
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  static const guint8 short_negotiate[] = { 0, 0, 0, 12, 'O', 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0, 0 };
  client_send (fd, short_negotiate, sizeof short_negotiate);
  client_expect_end (fd, NULL);
  close (fd);
  test_server_stop (&test);
  const char *events[] = { "close (none)", NULL };
  assert_events (events);
  recorder_clear ();
}

/* --- replies per step ------------------------------------------------------------ */

/* The steps of one mail, from connect to end of message, as Postfix sends
 * them. */
static void
put_one_mail (GByteArray *out)
{
  put_connect_and_helo (out);
  put_macros (out, 'M', "i", "4XyzQ1", NULL);
  put_strings (out, 'M', "<a@example.org>", "SIZE=12", NULL);
  put_strings (out, 'R', "<b@example.org>", NULL);
  put_packet (out, 'T', NULL, 0);
  put_strings (out, 'L', "Subject", " hi", NULL);
  put_packet (out, 'N', NULL, 0);
  put_packet (out, 'B', "body\r\n", 6);
  put_strings (out, 'U', "XFOO", NULL);
  put_packet (out, 'E', NULL, 0);
}

static void
test_steps_no_reply (void)
{
  /* Every step agreed without a reply: only end of message answers. */
  recorder_reset ();
  recorder.want_steps = ALL_NO_REPLY;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_one_mail (out);
  put_packet (out, 'A', NULL, 0);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);

  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6, 0, ALL_NO_REPLY);
  put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  const char *events[] = {
    "negotiate 0x1ff 0x1fffff", "mail <a@example.org> SIZE=12", "rcpt <b@example.org>",
    "header Subject=[ hi]", "eoh", "body 6 [body\\x0d\\x0a]", "eom", "abort", "close conn1", NULL,
  };
  assert_events (events);
  recorder_clear ();
}

static void
test_steps_with_reply (void)
{
  /* No step agreed without a reply: each gets "continue", one at a time
   * as Postfix waits for it; macros and abort get nothing. */
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, 0);
  int fd = client_connect_negotiated (&test, reply);

  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_macros (out, 'C', "j", "mx.example.org", NULL);
  client_send_bytes (fd, out);
  static const char connect_data[] = "client.example.net\0" "4\x00\x19" "192.0.2.7";
  g_byte_array_set_size (out, 0);
  put_packet (out, 'C', connect_data, sizeof connect_data);
  client_send_bytes (fd, out);
  client_expect_simple (fd, 'c');

  struct {
    char command;
    const char *strings[3];
  } steps[] = {
    { 'H', { "client.example.net", NULL } },
    { 'M', { "<a@example.org>", NULL } },
    { 'R', { "<b@example.org>", "NOTIFY=NEVER", NULL } },
    { 'T', { NULL } },
    { 'L', { "From", " a@example.org", NULL } },
    { 'N', { NULL } },
    { 'U', { "XFOO bar", NULL } },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (steps); i++)
    {
      g_autoptr (GByteArray) data = g_byte_array_new ();
      for (const char *const *s = steps[i].strings; *s != NULL; s++)
        g_byte_array_append (data, (const guint8 *) *s, (guint) strlen (*s) + 1);
      g_byte_array_set_size (out, 0);
      put_packet (out, steps[i].command, data->data, data->len);
      client_send_bytes (fd, out);
      client_expect_simple (fd, 'c');
    }
  g_byte_array_set_size (out, 0);
  put_packet (out, 'B', "x", 1);
  client_send_bytes (fd, out);
  client_expect_simple (fd, 'c');
  g_byte_array_set_size (out, 0);
  put_packet (out, 'E', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_simple (fd, 'c');
  /* Abort: no answer. */
  g_byte_array_set_size (out, 0);
  put_packet (out, 'A', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_silence (fd, 100);
  g_byte_array_set_size (out, 0);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_end (fd, NULL);
  close (fd);
  test_server_stop (&test);
  const char *events[] = {
    "negotiate 0x1ff 0x1fffff", "mail <a@example.org>", "rcpt <b@example.org> NOTIFY=NEVER",
    "header From=[ a@example.org]", "eoh", "body 1 [x]", "eom", "abort", "close conn1", NULL,
  };
  assert_events (events);
  recorder_clear ();
}

static void
test_steps_some_no_reply (void)
{
  /* Only MAIL, RCPT and headers without reply: the others still answer. */
  recorder_reset ();
  recorder.want_steps = TM_MILTER_NO_REPLY_MAIL | TM_MILTER_NO_REPLY_RCPT
                        | TM_MILTER_NO_REPLY_HEADER;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_one_mail (out);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6, 0, recorder.want_steps);
  for (int i = 0; i < 7; i++)   /* C H T N B U E */
    put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  recorder_clear ();
}

/* --- macros ------------------------------------------------------------------------ */

static void
test_macros (void)
{
  recorder_reset ();
  recorder.want_steps = ALL_NO_REPLY;
  static const char *const probe[] = { "i", "{i}", "j", "{daemon_name}", "daemon_name",
                                       "{mail_addr}", "{rcpt_addr}", "{nope}", NULL };
  recorder.probe = probe;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_connect_and_helo (out);
  /* Mail 1: "i" sent with braces at MAIL, without at end of message. */
  put_macros (out, 'M', "{i}", "Q1", "{mail_addr}", "a@example.org", NULL);
  put_strings (out, 'M', "<a@example.org>", NULL);
  put_macros (out, 'R', "{rcpt_addr}", "b@example.org", NULL);
  put_strings (out, 'R', "<b@example.org>", NULL);
  put_macros (out, 'E', "i", "Q1-eom", NULL);
  put_packet (out, 'E', NULL, 0);
  /* Mail 2: nothing of mail 1 is left, the connection's macros are. */
  put_strings (out, 'M', "<c@example.org>", NULL);
  /* A second 'D' for a step replaces the first. */
  put_macros (out, 'M', "i", "Q2", "{mail_addr}", "c@example.org", NULL);
  put_macros (out, 'M', "i", "Q2b", NULL);
  put_strings (out, 'R', "<d@example.org>", NULL);
  put_packet (out, 'A', NULL, 0);
  /* Mail 3, after the abort: nothing of mail 2 is left. Macros for a
   * step this filter does not know ('X') are ignored. */
  put_macros (out, 'X', "i", "ignored", NULL);
  put_strings (out, 'M', "<e@example.org>", NULL);
  /* A macro at DATA overrides the same name at MAIL; headers see it. */
  put_macros (out, 'M', "i", "Q3", NULL);
  put_macros (out, 'T', "i", "Q3-data", NULL);
  put_packet (out, 'T', NULL, 0);
  put_strings (out, 'L', "Subject", "x", NULL);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6, 0, ALL_NO_REPLY);
  put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);

#define CONNECTION "j=mx.example.org {daemon_name}=smtpd daemon_name=smtpd"
  const char *events[] = {
    "negotiate 0x1ff 0x1fffff",
    "mail <a@example.org> | i=Q1 {i}=Q1 " CONNECTION " {mail_addr}=a@example.org "
    "{rcpt_addr}=NULL {nope}=NULL",
    "rcpt <b@example.org> | i=Q1 {i}=Q1 " CONNECTION " {mail_addr}=a@example.org "
    "{rcpt_addr}=b@example.org {nope}=NULL",
    "eom | i=Q1-eom {i}=Q1-eom " CONNECTION " {mail_addr}=a@example.org "
    "{rcpt_addr}=b@example.org {nope}=NULL",
    "mail <c@example.org> | i=NULL {i}=NULL " CONNECTION " {mail_addr}=NULL "
    "{rcpt_addr}=NULL {nope}=NULL",
    "rcpt <d@example.org> | i=Q2b {i}=Q2b " CONNECTION " {mail_addr}=NULL "
    "{rcpt_addr}=NULL {nope}=NULL",
    "abort | i=Q2b {i}=Q2b " CONNECTION " {mail_addr}=NULL {rcpt_addr}=NULL {nope}=NULL",
    "mail <e@example.org> | i=NULL {i}=NULL " CONNECTION " {mail_addr}=NULL "
    "{rcpt_addr}=NULL {nope}=NULL",
    "header Subject=[x] | i=Q3-data {i}=Q3-data " CONNECTION " {mail_addr}=NULL "
    "{rcpt_addr}=NULL {nope}=NULL",
    "close conn1",
    NULL,
  };
#undef CONNECTION
  assert_events (events);
  recorder_clear ();
}

static void
test_macros_cleared_by_new_connection (void)
{
  /* After "quit, new connection follows" the connection's macros are gone
   * too. */
  recorder_reset ();
  recorder.want_steps = ALL_NO_REPLY;
  static const char *const probe[] = { "j", "i", NULL };
  recorder.probe = probe;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_connect_and_helo (out);
  put_macros (out, 'M', "i", "Q1", NULL);
  put_strings (out, 'M', "<a@example.org>", NULL);
  put_packet (out, 'K', NULL, 0);
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_strings (out, 'M', "<b@example.org>", NULL);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6, 0, ALL_NO_REPLY);
  put_negotiate_reply (expected, 6, 0, ALL_NO_REPLY);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  const char *events[] = {
    "negotiate 0x1ff 0x1fffff", "mail <a@example.org> | j=mx.example.org i=Q1", "close conn1",
    "negotiate 0x1ff 0x1fffff", "mail <b@example.org> | j=NULL i=NULL", "close conn2", NULL,
  };
  assert_events (events);
  recorder_clear ();
}

/* --- what the callbacks see -------------------------------------------------------- */

static void
test_callback_values (void)
{
  recorder_reset ();
  recorder.want_steps = ALL_NO_REPLY | TM_MILTER_HEADER_LEADING_SPACE;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_connect_and_helo (out);
  put_strings (out, 'M', "<a@example.org>", "SIZE=1234", "BODY=8BITMIME", "", NULL);
  put_strings (out, 'R', "<b@example.org>", NULL);
  put_strings (out, 'R', "<>", "ORCPT=rfc822;b@example.org", NULL);
  put_packet (out, 'T', NULL, 0);
  put_strings (out, 'L', "Subject", " Hello\r\n world", NULL);
  put_strings (out, 'L', "X-Empty", "", NULL);
  put_strings (out, 'L', "From", " =?UTF-8?B?2LPZhNin2YU=?= <c@example.org>", NULL);
  put_packet (out, 'N', NULL, 0);
  /* Body chunks are binary: CR LF, a NUL, bytes over 0x7f. */
  static const guint8 chunk[] = { 'l', 'i', 'n', 'e', '\r', '\n', 0, 0xd8, 0xb3, '\r', '\n' };
  put_packet (out, 'B', chunk, sizeof chunk);
  put_packet (out, 'B', "", 0);
  /* The last body bytes inside end of message itself. */
  put_packet (out, 'E', "tail\r\n", 6);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6, 0, ALL_NO_REPLY | TM_MILTER_HEADER_LEADING_SPACE);
  put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  const char *events[] = {
    "negotiate 0x1ff 0x1fffff",
    "mail <a@example.org> SIZE=1234 BODY=8BITMIME ",
    "rcpt <b@example.org>",
    "rcpt <> ORCPT=rfc822;b@example.org",
    "header Subject=[ Hello\r\n world]",
    "header X-Empty=[]",
    "header From=[ =?UTF-8?B?2LPZhNin2YU=?= <c@example.org>]",
    "eoh",
    "body 11 [line\\x0d\\x0a\\x00\\xd8\\xb3\\x0d\\x0a]",
    "body 0 []",
    "body 6 [tail\\x0d\\x0a]",
    "eom",
    "close conn1",
    NULL,
  };
  assert_events (events);
  g_assert_cmphex (recorder.steps_at_mail, ==, ALL_NO_REPLY | TM_MILTER_HEADER_LEADING_SPACE);
  recorder_clear ();
}

/* --- end of message ---------------------------------------------------------------- */

static TmMilterVerdict
modify_all (TmMilterSession *session)
{
  g_assert_true (tm_milter_session_add_header (session, "X-Ticket", " 42"));
  g_assert_true (tm_milter_session_change_header (session, "Subject", 2, "[#42] Hi"));
  g_assert_true (tm_milter_session_change_header (session, "X-Old", 1, NULL));
  g_assert_true (tm_milter_session_add_recipient (session, "<c@example.org>"));
  g_assert_true (tm_milter_session_delete_recipient (session, "<b@example.org>"));
  return recorder.verdict;
}

/* Outside end of message nothing can be modified. */
static void
modify_too_early (TmMilterSession *session, const char *unused)
{
  g_assert_false (tm_milter_session_add_header (session, "X-Early", "1"));
  g_assert_false (tm_milter_session_change_header (session, "Subject", 1, "x"));
  g_assert_false (tm_milter_session_add_recipient (session, "<x@example.org>"));
  g_assert_false (tm_milter_session_delete_recipient (session, "<b@example.org>"));
}

/* The bytes of modify_all()'s requests, in order. */
static void
put_all_modifications (GByteArray *out)
{
  put_strings (out, 'h', "X-Ticket", " 42", NULL);
  static const guint8 change[] = { 0, 0, 0, 22, 'm', 0, 0, 0, 2, 'S', 'u', 'b', 'j', 'e', 'c', 't',
                                   0, '[', '#', '4', '2', ']', ' ', 'H', 'i', 0 };
  g_byte_array_append (out, change, sizeof change);
  static const guint8 delete_header[] = { 0, 0, 0, 12, 'm', 0, 0, 0, 1, 'X', '-', 'O', 'l', 'd',
                                          0, 0 };
  g_byte_array_append (out, delete_header, sizeof delete_header);
  put_strings (out, '+', "<c@example.org>", NULL);
  put_strings (out, '-', "<b@example.org>", NULL);
}

static void
test_end_of_message_modifications (void)
{
  recorder_reset ();
  recorder.want_actions = TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_CHANGE_HEADERS
                          | TM_MILTER_ACTION_ADD_RECIPIENTS | TM_MILTER_ACTION_DELETE_RECIPIENTS;
  recorder.on_end_of_message = modify_all;
  recorder.on_mail = modify_too_early;
  recorder.on_header = modify_too_early;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, recorder.want_actions, 0);
  int fd = client_connect_negotiated (&test, reply);

  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_strings (out, 'M', "<a@example.org>", NULL);
  client_send_bytes (fd, out);
  client_expect_simple (fd, 'c');
  g_byte_array_set_size (out, 0);
  put_strings (out, 'L', "Subject", "Hi", NULL);
  client_send_bytes (fd, out);
  client_expect_simple (fd, 'c');
  /* One mail answered "continue", one "accept": the modifications come
   * first, then the verdict. */
  for (int round = 0; round < 2; round++)
    {
      recorder.verdict = round == 0 ? TM_MILTER_CONTINUE : TM_MILTER_ACCEPT;
      g_byte_array_set_size (out, 0);
      put_packet (out, 'E', NULL, 0);
      client_send_bytes (fd, out);
      g_autoptr (GByteArray) expected = g_byte_array_new ();
      put_all_modifications (expected);
      put_packet (expected, round == 0 ? 'c' : 'a', NULL, 0);
      client_expect (fd, expected);
    }
  g_byte_array_set_size (out, 0);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_end (fd, NULL);
  close (fd);
  test_server_stop (&test);
  recorder_clear ();
}

static TmMilterVerdict
modify_partly_agreed (TmMilterSession *session)
{
  g_assert_true (tm_milter_session_add_header (session, "X-Ticket", "42"));
  /* Offered but not wanted, and wanted but not offered. */
  g_assert_false (tm_milter_session_change_header (session, "Subject", 1, "x"));
  g_assert_false (tm_milter_session_change_header (session, "Subject", 1, NULL));
  g_assert_false (tm_milter_session_add_recipient (session, "<c@example.org>"));
  g_assert_true (tm_milter_session_delete_recipient (session, "<b@example.org>"));
  return TM_MILTER_CONTINUE;
}

static void
test_end_of_message_action_not_agreed (void)
{
  recorder_reset ();
  recorder.want_actions = TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_ADD_RECIPIENTS
                          | TM_MILTER_ACTION_DELETE_RECIPIENTS;
  recorder.want_steps = ALL_NO_REPLY;
  recorder.on_end_of_message = modify_partly_agreed;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  /* The MTA offers no ADD_RECIPIENTS. */
  guint32 offered = POSTFIX_ACTIONS & ~TM_MILTER_ACTION_ADD_RECIPIENTS;
  put_negotiate (out, POSTFIX_VERSION, offered, POSTFIX_STEPS);
  put_one_mail (out);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6,
                       TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_DELETE_RECIPIENTS,
                       ALL_NO_REPLY);
  put_strings (expected, 'h', "X-Ticket", "42", NULL);
  put_strings (expected, '-', "<b@example.org>", NULL);
  put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  recorder_clear ();
}

static TmMilterVerdict
tempfail_with_reply (TmMilterSession *session)
{
  g_assert_true (tm_milter_session_add_header (session, "X-Ticket", "42"));
  tm_milter_session_set_reply (session, "451", "4.3.0", "cannot\r\nstore\nthe 100% ticket\r");
  return TM_MILTER_TEMPFAIL;
}

static TmMilterVerdict
tempfail_without_reply (TmMilterSession *session)
{
  return TM_MILTER_TEMPFAIL;
}

/* For the mails from c@ and e@ only. */
static void
set_reply_in_mail (TmMilterSession *session, const char *address)
{
  if (strcmp (address, "<c@example.org>") == 0 || strcmp (address, "<e@example.org>") == 0)
    tm_milter_session_set_reply (session, "451", "4.7.1", "from mail");
}

static void
test_end_of_message_tempfail (void)
{
  recorder_reset ();
  recorder.want_actions = TM_MILTER_ACTION_ADD_HEADERS;
  recorder.want_steps = ALL_NO_REPLY;
  recorder.on_mail = set_reply_in_mail;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, TM_MILTER_ACTION_ADD_HEADERS, ALL_NO_REPLY);
  int fd = client_connect_negotiated (&test, reply);
  g_autoptr (GByteArray) out = g_byte_array_new ();

  /* With a reply text: 'y' with the code, CR and LF made spaces. The
   * header requested before it still goes out, before it. */
  recorder.on_end_of_message = tempfail_with_reply;
  put_strings (out, 'M', "<a@example.org>", NULL);
  put_packet (out, 'E', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_strings (expected, 'h', "X-Ticket", "42", NULL);
  /* The MTA reads the text as a format: '%' goes as "%%". */
  static const char text[] = "451 4.3.0 cannot  store the 100%% ticket ";
  put_packet (expected, 'y', text, sizeof text);
  client_expect (fd, expected);

  /* The next mail's tempfail without a text: 't' (the text was the
   * previous mail's). */
  recorder.on_end_of_message = tempfail_without_reply;
  g_byte_array_set_size (out, 0);
  put_strings (out, 'M', "<b@example.org>", NULL);
  put_packet (out, 'E', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_simple (fd, 't');

  /* A text set during a mail that was then aborted is gone too. */
  g_byte_array_set_size (out, 0);
  put_strings (out, 'M', "<c@example.org>", NULL);
  put_packet (out, 'A', NULL, 0);
  put_strings (out, 'M', "<d@example.org>", NULL);
  put_packet (out, 'E', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_simple (fd, 't');

  /* A text set at MAIL serves that mail's end of message. */
  g_byte_array_set_size (out, 0);
  put_strings (out, 'M', "<e@example.org>", NULL);
  put_packet (out, 'E', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) from_mail = g_byte_array_new ();
  static const char text_from_mail[] = "451 4.7.1 from mail";
  put_packet (from_mail, 'y', text_from_mail, sizeof text_from_mail);
  client_expect (fd, from_mail);

  g_byte_array_set_size (out, 0);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_end (fd, NULL);
  close (fd);
  test_server_stop (&test);
  recorder_clear ();
}

static void
test_end_of_message_accept (void)
{
  recorder_reset ();
  recorder.want_steps = ALL_NO_REPLY;
  recorder.verdict = TM_MILTER_ACCEPT;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_one_mail (out);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6, 0, ALL_NO_REPLY);
  put_packet (expected, 'a', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  recorder_clear ();
}

/* --- quitting ------------------------------------------------------------------------ */

static void
test_quit_new_connection (void)
{
  recorder_reset ();
  recorder.want_actions = TM_MILTER_ACTION_ADD_HEADERS;
  recorder.want_steps = ALL_NO_REPLY;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_one_mail (out);
  put_packet (out, 'K', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6, TM_MILTER_ACTION_ADD_HEADERS, ALL_NO_REPLY);
  put_packet (expected, 'c', NULL, 0);
  client_expect (fd, expected);
  /* 'K' has no reply, and the connection stays. */
  client_expect_silence (fd, 100);

  /* A new negotiation, with other wishes, on the same socket. */
  recorder.want_actions = 0;
  recorder.want_steps = 0;
  g_byte_array_set_size (out, 0);
  put_negotiate (out, 2, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_strings (out, 'M', "<z@example.org>", NULL);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  g_byte_array_set_size (expected, 0);
  put_negotiate_reply (expected, 2, 0, 0);
  put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  const char *events[] = {
    "negotiate 0x1ff 0x1fffff", "mail <a@example.org> SIZE=12", "rcpt <b@example.org>",
    "header Subject=[ hi]", "eoh", "body 6 [body\\x0d\\x0a]", "eom", "close conn1",
    "negotiate 0x1ff 0x1fffff", "mail <z@example.org>", "close conn2", NULL,
  };
  assert_events (events);
  recorder_clear ();
}

/* 'K' and then the end of the connection: the filter's close runs once,
 * not again for a connection that never negotiated after the 'K'. */
static void
test_quit_new_connection_then_end (void)
{
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, 0);
  int fd = client_connect_negotiated (&test, reply);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_packet (out, 'K', NULL, 0);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_end (fd, NULL);
  close (fd);
  test_server_stop (&test);
  g_mutex_lock (&recorder.lock);
  g_assert_cmpint (recorder.closes, ==, 1);
  g_mutex_unlock (&recorder.lock);
  recorder_clear ();
}

static void
test_quit (void)
{
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, 0);
  int fd = client_connect_negotiated (&test, reply);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_end (fd, NULL);
  /* Once the connection is closed the filter has let go. */
  g_mutex_lock (&recorder.lock);
  g_assert_cmpint (recorder.closes, ==, 1);
  g_mutex_unlock (&recorder.lock);
  close (fd);
  test_server_stop (&test);
  const char *events[] = { "negotiate 0x1ff 0x1fffff", "close conn1", NULL };
  assert_events (events);
  recorder_clear ();
}

static void
test_quit_without_negotiation (void)
{
  /* An MTA that connects and goes away at once. */
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  client_expect_end (fd, NULL);
  close (fd);
  /* One that says nothing at all; the next one's reply shows that the
   * server has accepted it (it accepts in order). */
  fd = client_connect (&test);
  close (fd);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, 0);
  fd = client_connect_negotiated (&test, reply);
  close (fd);
  test_server_stop (&test);
  g_assert_cmpint (recorder.negotiations, ==, 1);
  g_assert_cmpint (recorder.closes, ==, 3);
  recorder_clear ();
}

/* --- broken input ------------------------------------------------------------------------ */

#define BROKEN_MAX_PACKET 1024

/* Sends BEFORE (may be NULL) and BROKEN on one of two negotiated
 * connections: that one gets EXPECTED_BEFORE (NULL: nothing) and is closed,
 * while the other one goes on. The server allows BROKEN_MAX_PACKET bytes of
 * data. */
static void
check_broken (const GByteArray *before, const GByteArray *expected_before,
              const GByteArray *broken)
{
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, BROKEN_MAX_PACKET);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, 0);
  int good = client_connect_negotiated (&test, reply);
  int bad = client_connect_negotiated (&test, reply);

  g_autoptr (GByteArray) out = g_byte_array_new ();
  if (before != NULL)
    g_byte_array_append (out, before->data, before->len);
  g_byte_array_append (out, broken->data, broken->len);
  client_send_bytes (bad, out);
  client_expect_end (bad, expected_before);
  close (bad);

  /* The other connection is unaffected. */
  g_byte_array_set_size (out, 0);
  put_strings (out, 'M', "<good@example.org>", NULL);
  client_send_bytes (good, out);
  client_expect_simple (good, 'c');
  g_byte_array_set_size (out, 0);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (good, out);
  client_expect_end (good, NULL);
  close (good);
  test_server_stop (&test);
  g_assert_true (has_event ("mail <good@example.org>"));
  g_assert_cmpint (recorder.negotiations, ==, 2);
  g_assert_cmpint (recorder.closes, ==, 2);
  g_assert_true (has_event ("close conn1"));
  g_assert_true (has_event ("close conn2"));
}

static void
test_broken_length_zero (void)
{
  /* After a step that is answered: the answer comes, then the end. */
  g_autoptr (GByteArray) before = g_byte_array_new ();
  put_packet (before, 'T', NULL, 0);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_packet (expected, 'c', NULL, 0);
  static const guint8 zero[] = { 0, 0, 0, 0, 'C', 0 };
  g_autoptr (GByteArray) broken = g_byte_array_new ();
  g_byte_array_append (broken, zero, sizeof zero);
  check_broken (before, expected, broken);
  g_assert_false (has_event ("eom"));
  recorder_clear ();
}

static void
test_broken_over_max (void)
{
  /* Only the length is sent: refused from it alone. */
  static const guint8 header[] = { 0, 0, (BROKEN_MAX_PACKET + 2) >> 8,
                                   (BROKEN_MAX_PACKET + 2) & 0xff };
  g_autoptr (GByteArray) broken = g_byte_array_new ();
  g_byte_array_append (broken, header, sizeof header);
  check_broken (NULL, NULL, broken);
  recorder_clear ();

  /* The whole packet, one byte over. */
  g_autoptr (GByteArray) whole = g_byte_array_new ();
  g_autofree guint8 *chunk = g_malloc0 (BROKEN_MAX_PACKET + 1);
  put_packet (whole, 'B', chunk, BROKEN_MAX_PACKET + 1);
  check_broken (NULL, NULL, whole);
  g_assert_false (has_event_prefix ("body"));
  recorder_clear ();
}

static void
test_max_packet_boundary (void)
{
  /* Data of exactly the maximum is fine. */
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, BROKEN_MAX_PACKET);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, 0);
  int fd = client_connect_negotiated (&test, reply);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autofree guint8 *chunk = g_malloc (BROKEN_MAX_PACKET);
  memset (chunk, 'x', BROKEN_MAX_PACKET);
  put_packet (out, 'B', chunk, BROKEN_MAX_PACKET);
  put_packet (out, 'Q', NULL, 0);
  client_send_bytes (fd, out);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  g_autofree char *sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, chunk,
                                                       BROKEN_MAX_PACKET);
  g_autofree char *event = g_strdup_printf ("body %d [sha256:%s]", BROKEN_MAX_PACKET, sum);
  const char *events[] = { "negotiate 0x1ff 0x1fffff", event, "close conn1", NULL };
  assert_events (events);
  recorder_clear ();
}

static void
test_broken_unknown_command (void)
{
  g_autoptr (GByteArray) before = g_byte_array_new ();
  put_strings (before, 'M', "<a@example.org>", NULL);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_packet (expected, 'c', NULL, 0);
  g_autoptr (GByteArray) broken = g_byte_array_new ();
  put_packet (broken, 'Z', NULL, 0);
  /* Whatever follows is not handled. */
  put_strings (broken, 'R', "<b@example.org>", NULL);
  check_broken (before, expected, broken);
  g_assert_true (has_event ("mail <a@example.org>"));
  g_assert_false (has_event ("rcpt <b@example.org>"));
  recorder_clear ();

  /* A non-printable command byte. */
  g_autoptr (GByteArray) binary = g_byte_array_new ();
  put_packet (binary, '\xff', "x", 1);
  check_broken (NULL, NULL, binary);
  recorder_clear ();
}

static void
test_broken_header (void)
{
  /* The value without its NUL. */
  g_autoptr (GByteArray) unterminated = g_byte_array_new ();
  put_packet (unterminated, 'L', "Subject\0Hello", 13);
  check_broken (NULL, NULL, unterminated);
  g_assert_false (has_event ("header Subject=[Hello]"));
  recorder_clear ();

  /* A name without a value. */
  g_autoptr (GByteArray) name_only = g_byte_array_new ();
  put_packet (name_only, 'L', "Subject", 8);
  check_broken (NULL, NULL, name_only);
  recorder_clear ();

  /* Three strings. */
  g_autoptr (GByteArray) three = g_byte_array_new ();
  put_strings (three, 'L', "Subject", "a", "b", NULL);
  check_broken (NULL, NULL, three);
  recorder_clear ();
}

static void
test_broken_envelope (void)
{
  /* MAIL with no argument at all. */
  g_autoptr (GByteArray) empty = g_byte_array_new ();
  put_packet (empty, 'M', NULL, 0);
  check_broken (NULL, NULL, empty);
  recorder_clear ();

  /* RCPT without its NUL. */
  g_autoptr (GByteArray) unterminated = g_byte_array_new ();
  put_packet (unterminated, 'R', "<b@example.org>", 15);
  check_broken (NULL, NULL, unterminated);
  recorder_clear ();

  /* An address followed by more than 63 parameters. */
  g_autoptr (GByteArray) data = g_byte_array_new ();
  for (int i = 0; i < 65; i++)
    g_byte_array_append (data, (const guint8 *) "P=1", 4);
  g_autoptr (GByteArray) many = g_byte_array_new ();
  put_packet (many, 'M', data->data, data->len);
  check_broken (NULL, NULL, many);
  recorder_clear ();
}

static void
test_broken_macros (void)
{
  /* 'D' without even the step letter. */
  g_autoptr (GByteArray) empty = g_byte_array_new ();
  put_packet (empty, 'D', NULL, 0);
  check_broken (NULL, NULL, empty);
  recorder_clear ();

  /* Macros without the final NUL. */
  g_autoptr (GByteArray) unterminated = g_byte_array_new ();
  put_packet (unterminated, 'D', "Mi\0Q1", 5);
  check_broken (NULL, NULL, unterminated);
  recorder_clear ();
}

/* --- how the bytes arrive ---------------------------------------------------------------- */

/* A whole session in Postfix's order, and the filter's answers to it. */
static void
put_session (GByteArray *out, GByteArray *expected)
{
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  put_one_mail (out);
  put_packet (out, 'Q', NULL, 0);
  put_negotiate_reply (expected, 6, TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_CHANGE_HEADERS
                       | TM_MILTER_ACTION_ADD_RECIPIENTS | TM_MILTER_ACTION_DELETE_RECIPIENTS, 0);
  for (int i = 0; i < 9; i++)   /* C H M R T L N B U */
    put_packet (expected, 'c', NULL, 0);
  put_all_modifications (expected);
  put_packet (expected, 'c', NULL, 0);
}

static const char *const session_events[] = {
  "negotiate 0x1ff 0x1fffff", "mail <a@example.org> SIZE=12", "rcpt <b@example.org>",
  "header Subject=[ hi]", "eoh", "body 6 [body\\x0d\\x0a]", "eom", "close conn1", NULL,
};

static void
session_recorder_reset (void)
{
  recorder_reset ();
  recorder.want_actions = TM_MILTER_ACTION_ADD_HEADERS | TM_MILTER_ACTION_CHANGE_HEADERS
                          | TM_MILTER_ACTION_ADD_RECIPIENTS | TM_MILTER_ACTION_DELETE_RECIPIENTS;
  recorder.on_end_of_message = modify_all;
}

static void
test_pipelined (void)
{
  /* Every command in one write (steps with replies too, which Postfix
   * would not pipeline): every answer, in order. */
  session_recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_session (out, expected);
  client_send_bytes (fd, out);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  assert_events ((const char *const *) session_events);
  recorder_clear ();
}

static void
test_one_byte_writes (void)
{
  /* The same session, one byte per write with a pause after each, so that
   * the filter sees lengths and packets cut everywhere. */
  session_recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  int fd = client_connect (&test);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_session (out, expected);
  for (guint i = 0; i < out->len; i++)
    {
      client_send (fd, out->data + i, 1);
      g_usleep (200);
    }
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  assert_events ((const char *const *) session_events);
  recorder_clear ();
}

static void
test_large_packets (void)
{
  /* Packets bigger than the session's usual input buffer (128 KiB), sent
   * in uneven pieces, then small ones again. */
  recorder_reset ();
  recorder.want_steps = TM_MILTER_NO_REPLY_BODY;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 512 * 1024);
  int fd = client_connect (&test);
  gsize sizes[] = { 300 * 1000, 512 * 1024, 70000 };
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_negotiate (out, POSTFIX_VERSION, POSTFIX_ACTIONS, POSTFIX_STEPS);
  g_autoptr (GPtrArray) sums = g_ptr_array_new_with_free_func (g_free);
  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autofree guint8 *chunk = g_malloc (sizes[i]);
      for (gsize j = 0; j < sizes[i]; j++)
        chunk[j] = (guint8) (j * 31 + i);
      put_packet (out, 'B', chunk, sizes[i]);
      put_packet (out, 'B', "small", 5);
      g_autofree char *sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, chunk, sizes[i]);
      g_ptr_array_add (sums, g_strdup_printf ("body %zu [sha256:%s]", sizes[i], sum));
      g_ptr_array_add (sums, g_strdup ("body 5 [small]"));
    }
  put_packet (out, 'E', NULL, 0);
  put_packet (out, 'Q', NULL, 0);
  /* In pieces of 4093 bytes, while the filter reads. */
  for (guint sent = 0; sent < out->len; sent += 4093)
    client_send (fd, out->data + sent, MIN (4093, out->len - sent));
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_negotiate_reply (expected, 6, 0, TM_MILTER_NO_REPLY_BODY);
  put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_stop (&test);
  g_ptr_array_insert (sums, 0, g_strdup ("negotiate 0x1ff 0x1fffff"));
  g_ptr_array_add (sums, g_strdup ("eom"));
  g_ptr_array_add (sums, g_strdup ("close conn1"));
  g_ptr_array_add (sums, NULL);
  assert_events ((const char *const *) sums->pdata);
  recorder_clear ();
}

static void
test_concurrent_sessions (void)
{
  /* Several connections at once, their steps interleaved. */
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, 0);
  int fds[4];
  for (int i = 0; i < 4; i++)
    fds[i] = client_connect_negotiated (&test, reply);
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 4; i++)
      {
        g_autoptr (GByteArray) out = g_byte_array_new ();
        g_autofree char *address = g_strdup_printf ("<s%d-%d@example.org>", i, round);
        put_strings (out, 'M', address, NULL);
        client_send_bytes (fds[i], out);
        client_expect_simple (fds[i], 'c');
      }
  for (int i = 0; i < 4; i++)
    {
      g_autoptr (GByteArray) out = g_byte_array_new ();
      put_packet (out, 'Q', NULL, 0);
      client_send_bytes (fds[i], out);
      client_expect_end (fds[i], NULL);
      close (fds[i]);
    }
  test_server_stop (&test);
  g_assert_cmpint (recorder.negotiations, ==, 4);
  g_assert_cmpint (recorder.closes, ==, 4);
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 4; i++)
      {
        g_autofree char *event = g_strdup_printf ("mail <s%d-%d@example.org>", i, round);
        g_assert_true (has_event (event));
      }
  recorder_clear ();
}

static void
test_connection_dropped (void)
{
  /* The MTA goes away in the middle of a packet: close is called. */
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, 0);
  int fd = client_connect_negotiated (&test, reply);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_strings (out, 'M', "<a@example.org>", NULL);
  client_send (fd, out->data, out->len - 3);
  close (fd);
  test_server_stop (&test);
  const char *events[] = { "negotiate 0x1ff 0x1fffff", "close conn1", NULL };
  assert_events (events);
  recorder_clear ();
}

/* --- stopping ------------------------------------------------------------------------ */

static void
test_stop_without_connections (void)
{
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  test_server_stop (&test);
  g_assert_cmpint (recorder.closes, ==, 0);
  recorder_clear ();
}

static void
test_stop_closes_idle_connections (void)
{
  recorder_reset ();
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, 0);
  /* One that has said nothing yet, one negotiated and idle, one in the
   * middle of a packet. The server accepts in order: once the second has
   * its reply, the first has been accepted too. */
  int silent = client_connect (&test);
  int negotiated = client_connect_negotiated (&test, reply);
  int partial = client_connect_negotiated (&test, reply);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_strings (out, 'M', "<a@example.org>", NULL);
  client_send (partial, out->data, 7);
  client_expect_silence (silent, 50);

  tm_milter_server_stop (test.server);
  g_assert_true (test_server_returned (&test, DEADLINE_MS));
  client_expect_end (negotiated, NULL);
  client_expect_end (partial, NULL);
  client_expect_end (silent, NULL);
  close (negotiated);
  close (partial);
  close (silent);
  test_server_finish (&test);
  g_assert_cmpint (recorder.negotiations, ==, 2);
  g_assert_cmpint (recorder.closes, ==, 3);
  g_assert_false (has_event ("mail <a@example.org>"));
  recorder_clear ();
}

static void
test_stop_waits_for_callback (void)
{
  /* A session inside a callback finishes it and sends its answer; run()
   * returns only then. */
  recorder_reset ();
  recorder.want_steps = ALL_NO_REPLY;
  recorder.block_end_of_message = TRUE;
  TestServer test;
  test_server_start (&test, &recording_callbacks, 0);
  g_autoptr (GByteArray) reply = g_byte_array_new ();
  put_negotiate_reply (reply, 6, 0, ALL_NO_REPLY);
  int fd = client_connect_negotiated (&test, reply);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  put_strings (out, 'M', "<a@example.org>", NULL);
  put_packet (out, 'E', NULL, 0);
  client_send_bytes (fd, out);
  wait_for_end_of_message ();

  tm_milter_server_stop (test.server);
  /* Twice is the same as once. */
  tm_milter_server_stop (test.server);
  g_assert_false (test_server_returned (&test, 200));
  client_expect_silence (fd, 0);
  recorder_release ();
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  put_packet (expected, 'c', NULL, 0);
  client_expect_end (fd, expected);
  close (fd);
  test_server_finish (&test);
  const char *events[] = { "negotiate 0x1ff 0x1fffff", "mail <a@example.org>", "eom",
                           "close conn1", NULL };
  assert_events (events);
  recorder_clear ();
}

/* --- tm_milter_server_new ------------------------------------------------------------ */

static void
assert_new_fails (const char *spec)
{
  g_autoptr (GError) error = NULL;
  TmMilterServer *server = tm_milter_server_new (spec, &error);
  g_assert_null (server);
  g_assert_error (error, TM_MILTER_SERVER_ERROR, 0);
  g_test_message ("%s", error->message);
}

static void
assert_new_works (const char *spec)
{
  g_autoptr (GError) error = NULL;
  TmMilterServer *server = tm_milter_server_new (spec, &error);
  g_assert_no_error (error);
  g_assert_nonnull (server);
  tm_milter_server_free (&server);
  g_assert_null (server);
}

static void
test_new_unknown_notation (void)
{
  assert_new_fails ("");
  assert_new_fails ("tcp:25@127.0.0.1");
  assert_new_fails ("relative/milter.sock");
  assert_new_fails ("unix");
  assert_new_fails ("UNIX:/tmp/x.sock");
}

static void
test_new_unix_path (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *directory = g_dir_make_tmp ("tm-milter-XXXXXX", &error);
  g_assert_no_error (error);

  /* Empty, and too long for sun_path (108 bytes with its NUL). */
  assert_new_fails ("unix:");
  assert_new_fails ("local:");
  g_autofree char *long_name = g_strnfill (120, 'a');
  g_autofree char *long_path = g_build_filename (directory, long_name, NULL);
  g_autofree char *long_spec = g_strconcat ("unix:", long_path, NULL);
  assert_new_fails (long_spec);
  g_assert_false (g_file_test (long_path, G_FILE_TEST_EXISTS));

  /* A directory that does not exist. */
  g_autofree char *missing = g_strconcat ("unix:", directory, "/no/such/dir.sock", NULL);
  assert_new_fails (missing);

  /* The three unix notations. */
  g_autofree char *path = g_build_filename (directory, "milter.sock", NULL);
  g_autofree char *unix_spec = g_strconcat ("unix:", path, NULL);
  g_autofree char *local_spec = g_strconcat ("local:", path, NULL);
  assert_new_works (unix_spec);
  struct stat status;
  g_assert_cmpint (lstat (path, &status), ==, 0);
  g_assert_true (S_ISSOCK (status.st_mode));
  /* The socket left behind is stale: replaced. */
  assert_new_works (local_spec);
  assert_new_works (path);
  g_assert_cmpint (lstat (path, &status), ==, 0);
  g_assert_true (S_ISSOCK (status.st_mode));

  /* A regular file in the way is not replaced. */
  g_autofree char *file = g_build_filename (directory, "file.sock", NULL);
  g_assert_true (g_file_set_contents (file, "keep me", -1, NULL));
  g_autofree char *file_spec = g_strconcat ("unix:", file, NULL);
  assert_new_fails (file_spec);
  g_autofree char *contents = NULL;
  g_assert_true (g_file_get_contents (file, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "keep me");

  /* Nor a symbolic link (to a socket), nor a directory. */
  g_autofree char *symlink_path = g_build_filename (directory, "link.sock", NULL);
  g_assert_cmpint (symlink (path, symlink_path), ==, 0);
  g_autofree char *symlink_spec = g_strconcat ("unix:", symlink_path, NULL);
  assert_new_fails (symlink_spec);
  g_assert_true (g_file_test (symlink_path, G_FILE_TEST_IS_SYMLINK));
  g_assert_cmpint (g_unlink (symlink_path), ==, 0);
  g_autofree char *subdirectory = g_build_filename (directory, "dir.sock", NULL);
  g_assert_cmpint (g_mkdir (subdirectory, 0700), ==, 0);
  g_autofree char *subdirectory_spec = g_strconcat ("unix:", subdirectory, NULL);
  assert_new_fails (subdirectory_spec);
  g_assert_true (g_file_test (subdirectory, G_FILE_TEST_IS_DIR));
  g_assert_cmpint (g_rmdir (subdirectory), ==, 0);

  tm_test_remove_directory (directory);
}

static void
test_new_inet (void)
{
  assert_new_fails ("inet:");
  assert_new_fails ("inet:@127.0.0.1");
  assert_new_fails ("inet:@");
  assert_new_fails ("inet:8891@");
  assert_new_fails ("inet6:");
  assert_new_fails ("inet6:@::1");
  assert_new_fails ("inet:no-such-service-here@127.0.0.1");
  /* Port 0: any free port. */
  assert_new_works ("inet:0@127.0.0.1");
  assert_new_works ("inet:0@localhost");
  assert_new_works ("inet:0");
  /* libmilter's bracketed address. */
  assert_new_works ("inet:0@[127.0.0.1]");
  assert_new_fails ("inet:0@[]");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/milter-server/negotiate/masks-to-offered", test_negotiate_masks_to_offered);
  g_test_add_func ("/milter-server/negotiate/version", test_negotiate_version);
  g_test_add_func ("/milter-server/negotiate/macro-lists", test_negotiate_macro_lists);
  g_test_add_func ("/milter-server/negotiate/without-callbacks", test_negotiate_without_callbacks);
  g_test_add_func ("/milter-server/negotiate/short-packet", test_negotiate_short_packet);
  g_test_add_func ("/milter-server/steps/no-reply", test_steps_no_reply);
  g_test_add_func ("/milter-server/steps/with-reply", test_steps_with_reply);
  g_test_add_func ("/milter-server/steps/some-no-reply", test_steps_some_no_reply);
  g_test_add_func ("/milter-server/macros/stages", test_macros);
  g_test_add_func ("/milter-server/macros/cleared-by-new-connection",
                   test_macros_cleared_by_new_connection);
  g_test_add_func ("/milter-server/callbacks/values", test_callback_values);
  g_test_add_func ("/milter-server/end-of-message/modifications",
                   test_end_of_message_modifications);
  g_test_add_func ("/milter-server/end-of-message/action-not-agreed",
                   test_end_of_message_action_not_agreed);
  g_test_add_func ("/milter-server/end-of-message/tempfail", test_end_of_message_tempfail);
  g_test_add_func ("/milter-server/end-of-message/accept", test_end_of_message_accept);
  g_test_add_func ("/milter-server/quit/new-connection", test_quit_new_connection);
  g_test_add_func ("/milter-server/quit/quit", test_quit);
  g_test_add_func ("/milter-server/quit/new-connection-then-end",
                   test_quit_new_connection_then_end);
  g_test_add_func ("/milter-server/quit/without-negotiation", test_quit_without_negotiation);
  g_test_add_func ("/milter-server/broken/length-zero", test_broken_length_zero);
  g_test_add_func ("/milter-server/broken/over-max", test_broken_over_max);
  g_test_add_func ("/milter-server/broken/max-boundary-accepted", test_max_packet_boundary);
  g_test_add_func ("/milter-server/broken/unknown-command", test_broken_unknown_command);
  g_test_add_func ("/milter-server/broken/header", test_broken_header);
  g_test_add_func ("/milter-server/broken/envelope", test_broken_envelope);
  g_test_add_func ("/milter-server/broken/macros", test_broken_macros);
  g_test_add_func ("/milter-server/input/pipelined", test_pipelined);
  g_test_add_func ("/milter-server/input/one-byte-writes", test_one_byte_writes);
  g_test_add_func ("/milter-server/input/large-packets", test_large_packets);
  g_test_add_func ("/milter-server/input/concurrent-sessions", test_concurrent_sessions);
  g_test_add_func ("/milter-server/input/connection-dropped", test_connection_dropped);
  g_test_add_func ("/milter-server/stop/without-connections", test_stop_without_connections);
  g_test_add_func ("/milter-server/stop/closes-idle-connections",
                   test_stop_closes_idle_connections);
  g_test_add_func ("/milter-server/stop/waits-for-callback", test_stop_waits_for_callback);
  g_test_add_func ("/milter-server/new/unknown-notation", test_new_unknown_notation);
  g_test_add_func ("/milter-server/new/unix-path", test_new_unix_path);
  g_test_add_func ("/milter-server/new/inet", test_new_inet);
  return g_test_run ();
}
