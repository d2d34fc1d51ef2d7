/* test-smtp-client.c - delivery outcomes of the SMTP client.
 *
 * A real MTA cannot be made to answer 450 to RCPT, drop the line in the
 * middle of DATA or fall silent on cue, so each test runs a small scripted
 * SMTP server in a thread of its own: it listens on 127.0.0.1 (port 0, so
 * tests never collide), serves one connection, answers each command as its
 * FakeScript says (a default for every field left NULL), and records the
 * command lines and the raw message data it received. The test joins the
 * thread after tm_smtp_send() returns and then looks at the transcript.
 * The fake gives up on its own after FAKE_DEADLINE_MS, so a client bug shows
 * as a failed assertion rather than a hung test run.
 */
#include "smtp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAKE_DEADLINE_MS 30000

/* Replies with a special meaning (compared by address, not by text). */
static const char FAKE_SILENT[] = "(answer nothing until the client hangs up)";
static const char FAKE_CLOSE[] = "(close the connection)";

typedef struct {
  const char *greeting;      /* "220 fake.test ESMTP" */
  const char *ehlo;          /* "250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME" */
  const char *helo;          /* "250 fake.test" */
  const char *starttls;      /* "454 4.7.0 TLS not available" */
  const char *auth;          /* "235 2.7.0 Authentication successful" */
  const char *mail;          /* "250 2.1.0 Ok" */
  const char *rcpt;          /* "250 2.1.5 Ok" */
  const char *data;          /* "354 End data with <CR><LF>.<CR><LF>" */
  const char *end_of_data;   /* "250 2.0.0 Ok: queued as 4XyzQ1" */
  const char *quit;          /* "221 2.0.0 Bye" */
  gboolean close_during_data;  /* hang up after the first line of data */
} FakeScript;

typedef struct {
  FakeScript script;
  int listen_fd;
  guint16 port;
  GThread *thread;
  /* Read only after fake_server_finish(). */
  GPtrArray *commands;       /* lines the client sent, CRLF removed */
  GString *content;          /* bytes between 354 and the final ".", as sent */
  gboolean content_complete; /* the final "." arrived */
} FakeServer;

typedef struct {
  int fd;
  GString *pending;
  gint64 deadline;           /* monotonic, microseconds */
} LineReader;

static gboolean
wait_readable (int fd, gint64 deadline)
{
  gint64 left_ms = (deadline - g_get_monotonic_time ()) / 1000;
  if (left_ms <= 0)
    return FALSE;
  struct pollfd poll_fd = { .fd = fd, .events = POLLIN };
  int ready;
  do
    ready = poll (&poll_fd, 1, (int) left_ms);
  while (ready < 0 && errno == EINTR);
  return ready > 0;
}

/* The next line with its line end into LINE; FALSE when the peer is gone. */
static gboolean
read_line (LineReader *reader, GString *line)
{
  for (;;)
    {
      const char *newline = memchr (reader->pending->str, '\n', reader->pending->len);
      if (newline != NULL)
        {
          gsize length = (gsize) (newline - reader->pending->str) + 1;
          g_string_truncate (line, 0);
          g_string_append_len (line, reader->pending->str, (gssize) length);
          g_string_erase (reader->pending, 0, (gssize) length);
          return TRUE;
        }
      if (!wait_readable (reader->fd, reader->deadline))
        return FALSE;
      char buffer[8192];
      ssize_t got = recv (reader->fd, buffer, sizeof buffer, 0);
      if (got <= 0)
        return FALSE;
      g_string_append_len (reader->pending, buffer, got);
    }
}

/* Sends REPLY; FALSE when the session is over (FAKE_SILENT, FAKE_CLOSE). */
static gboolean
answer (LineReader *reader, const char *reply)
{
  if (reply == FAKE_CLOSE)
    return FALSE;
  if (reply == FAKE_SILENT)
    {
      char buffer[4096];
      while (wait_readable (reader->fd, reader->deadline)
             && recv (reader->fd, buffer, sizeof buffer, 0) > 0)
        ;
      return FALSE;
    }
  g_autofree char *wire = g_strconcat (reply, "\r\n", NULL);
  gsize length = strlen (wire);
  return send (reader->fd, wire, length, MSG_NOSIGNAL) == (ssize_t) length;
}

static gboolean
receive_content (FakeServer *server, LineReader *reader)
{
  g_autoptr (GString) line = g_string_new (NULL);
  while (read_line (reader, line))
    {
      if (strcmp (line->str, ".\r\n") == 0)
        {
          server->content_complete = TRUE;
          return TRUE;
        }
      g_string_append_len (server->content, line->str, (gssize) line->len);
      if (server->script.close_during_data)
        return FALSE;
    }
  return FALSE;
}

#define OR(value, fallback) ((value) != NULL ? (value) : (fallback))

static gpointer
fake_server_run (gpointer user_data)
{
  FakeServer *server = user_data;
  const FakeScript *script = &server->script;
  gint64 deadline = g_get_monotonic_time () + FAKE_DEADLINE_MS * G_GINT64_CONSTANT (1000);
  if (!wait_readable (server->listen_fd, deadline))
    return NULL;
  int fd = accept (server->listen_fd, NULL, NULL);
  if (fd < 0)
    return NULL;

  LineReader reader = { .fd = fd, .pending = g_string_new (NULL), .deadline = deadline };
  g_autoptr (GString) line = g_string_new (NULL);
  gboolean talking = answer (&reader, OR (script->greeting, "220 fake.test ESMTP"));
  while (talking && read_line (&reader, line))
    {
      g_strchomp (line->str);
      g_ptr_array_add (server->commands, g_strdup (line->str));
      g_autofree char *verb = g_ascii_strup (line->str, (gssize) strcspn (line->str, " "));
      if (strcmp (verb, "EHLO") == 0)
        talking = answer (&reader, OR (script->ehlo, "250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME"));
      else if (strcmp (verb, "HELO") == 0)
        talking = answer (&reader, OR (script->helo, "250 fake.test"));
      else if (strcmp (verb, "STARTTLS") == 0)
        talking = answer (&reader, OR (script->starttls, "454 4.7.0 TLS not available"));
      else if (strcmp (verb, "AUTH") == 0)
        {
          /* "AUTH PLAIN" without an initial response: ask for it. */
          if (strchr (line->str + 5, ' ') == NULL)
            {
              talking = answer (&reader, "334 ") && read_line (&reader, line);
              if (!talking)
                break;
              g_strchomp (line->str);
              g_ptr_array_add (server->commands, g_strdup (line->str));
            }
          talking = answer (&reader, OR (script->auth, "235 2.7.0 Authentication successful"));
        }
      else if (strcmp (verb, "MAIL") == 0)
        talking = answer (&reader, OR (script->mail, "250 2.1.0 Ok"));
      else if (strcmp (verb, "RCPT") == 0)
        talking = answer (&reader, OR (script->rcpt, "250 2.1.5 Ok"));
      else if (strcmp (verb, "DATA") == 0)
        {
          const char *reply = OR (script->data, "354 End data with <CR><LF>.<CR><LF>");
          talking = answer (&reader, reply);
          if (talking && reply[0] == '3')
            talking = receive_content (server, &reader)
              && answer (&reader, OR (script->end_of_data, "250 2.0.0 Ok: queued as 4XyzQ1"));
        }
      else if (strcmp (verb, "QUIT") == 0)
        {
          answer (&reader, OR (script->quit, "221 2.0.0 Bye"));
          break;
        }
      else
        talking = answer (&reader, "502 5.5.2 Error: command not recognized");
    }
  close (fd);
  g_string_free (reader.pending, TRUE);
  return NULL;
}

static FakeServer *
fake_server_start (const FakeScript *script)
{
  FakeServer *server = g_new0 (FakeServer, 1);
  if (script != NULL)
    server->script = *script;
  server->commands = g_ptr_array_new_with_free_func (g_free);
  server->content = g_string_new (NULL);
  server->listen_fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (server->listen_fd, >=, 0);
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = 0 };
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (bind (server->listen_fd, (struct sockaddr *) &address, sizeof address), ==, 0);
  g_assert_cmpint (listen (server->listen_fd, 1), ==, 0);
  socklen_t address_length = sizeof address;
  g_assert_cmpint (getsockname (server->listen_fd, (struct sockaddr *) &address, &address_length), ==, 0);
  server->port = ntohs (address.sin_port);
  server->thread = g_thread_new ("fake-smtp", fake_server_run, server);
  return server;
}

/* Waits until the fake has hung up; its records are complete afterwards. */
static void
fake_server_finish (FakeServer *server)
{
  g_thread_join (server->thread);
  server->thread = NULL;
  close (server->listen_fd);
  server->listen_fd = -1;
}

static void
fake_server_free (FakeServer *server)
{
  if (server->thread != NULL)
    fake_server_finish (server);
  g_ptr_array_unref (server->commands);
  g_string_free (server->content, TRUE);
  g_free (server);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FakeServer, fake_server_free)

static gboolean
fake_server_received (const FakeServer *server, const char *prefix)
{
  for (guint i = 0; i < server->commands->len; i++)
    if (g_str_has_prefix (g_ptr_array_index (server->commands, i), prefix))
      return TRUE;
  return FALSE;
}

static const char simple_message[] =
  "From: support@example.test\r\n"
  "To: customer@example.test\r\n"
  "Subject: [Ticket#1] received\r\n"
  "Auto-Submitted: auto-replied\r\n"
  "\r\n"
  "We have your message.\r\n";

typedef struct {
  TmSmtpResult result;
  char *detail;
  double seconds;
} Outcome;

static void
outcome_clear (Outcome *outcome)
{
  g_clear_pointer (&outcome->detail, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Outcome, outcome_clear)

static gboolean
is_printable_line (const char *text)
{
  for (const char *at = text; *at != '\0'; at++)
    if ((guchar) *at < 0x20 || (guchar) *at > 0x7e)
      return FALSE;
  return TRUE;
}

/* Sends MESSAGE from SENDER to customer@example.test at SERVER's port (or
 * PORT when SERVER is NULL), then waits for the fake to finish. */
static Outcome
deliver (FakeServer *server, guint16 port, const TmSmtpOptions *base, const char *sender,
         const char *message)
{
  TmSmtpOptions options = { .starttls = TM_SMTP_STARTTLS_NO, .timeout_s = 10,
                            .connect_timeout_s = 5 };
  if (base != NULL)
    options = *base;
  g_autofree char *url = g_strdup_printf ("smtp://127.0.0.1:%u",
                                          (unsigned) (server != NULL ? server->port : port));
  if (options.url == NULL)
    options.url = url;
  Outcome outcome = { 0 };
  gint64 start = g_get_monotonic_time ();
  outcome.result = tm_smtp_send (&options, sender, "customer@example.test", message,
                                 strlen (message), &outcome.detail);
  outcome.seconds = (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
  if (server != NULL)
    fake_server_finish (server);
  g_test_message ("result %s in %.2f s: %s", tm_smtp_result_name (outcome.result),
                  outcome.seconds, outcome.detail);
  g_assert_nonnull (outcome.detail);
  g_assert_true (is_printable_line (outcome.detail));
  return outcome;
}

static void
test_result_names (void)
{
  g_assert_cmpstr (tm_smtp_result_name (TM_SMTP_SENT), ==, "sent");
  g_assert_cmpstr (tm_smtp_result_name (TM_SMTP_TEMPORARY), ==, "temporary");
  g_assert_cmpstr (tm_smtp_result_name (TM_SMTP_PERMANENT), ==, "permanent");
}

static void
test_delivery_transcript (void)
{
  g_autoptr (FakeServer) server = fake_server_start (NULL);
  const char *message =
    "Subject: dots\r\n"
    "\r\n"
    ".a line that starts with a dot\r\n"
    "..two dots\r\n"
    ".\r\n"
    "last line\r\n";
  TmSmtpOptions options = { .helo_name = "desk.example.test", .timeout_s = 10 };
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", message);

  g_assert_cmpint (outcome.result, ==, TM_SMTP_SENT);
  g_assert_cmpstr (outcome.detail, ==, "250 2.0.0 Ok: queued as 4XyzQ1");
  const char *expected[] = {
    "EHLO desk.example.test",
    "MAIL FROM:<>",
    "RCPT TO:<customer@example.test>",
    "DATA",
    "QUIT",
  };
  g_assert_cmpuint (server->commands->len, ==, G_N_ELEMENTS (expected));
  for (gsize i = 0; i < G_N_ELEMENTS (expected); i++)
    g_assert_cmpstr (g_ptr_array_index (server->commands, i), ==, expected[i]);
  g_assert_true (server->content_complete);
  g_assert_cmpstr (server->content->str, ==,
                   "Subject: dots\r\n"
                   "\r\n"
                   "..a line that starts with a dot\r\n"
                   "...two dots\r\n"
                   "..\r\n"
                   "last line\r\n");
}

static void
test_delivery_leading_dot_and_no_final_line_end (void)
{
  g_autoptr (FakeServer) server = fake_server_start (NULL);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "desk@example.test", ".first\r\nno end");
  g_assert_cmpint (outcome.result, ==, TM_SMTP_SENT);
  g_assert_true (fake_server_received (server, "EHLO "));
  g_assert_true (fake_server_received (server, "MAIL FROM:<desk@example.test>"));
  g_assert_true (server->content_complete);
  g_assert_cmpstr (server->content->str, ==, "..first\r\nno end\r\n");
}

/* A bare LF before "." must not end the data at a lenient server. */
static void
test_delivery_bare_line_ends_become_crlf (void)
{
  g_autoptr (FakeServer) server = fake_server_start (NULL);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "",
                                      "Subject: x\n\nline\n.\nsmuggled\r.\rend\r\n");
  g_assert_cmpint (outcome.result, ==, TM_SMTP_SENT);
  g_assert_cmpstr (server->content->str, ==,
                   "Subject: x\r\n\r\nline\r\n..\r\nsmuggled\r\n..\r\nend\r\n");
}

static void
test_delivery_multi_line_replies (void)
{
  FakeScript script = {
    .greeting = "220-fake.test ESMTP\r\n220-second greeting line\r\n220 ready",
    .ehlo = "250-fake.test\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 SMTPUTF8",
    .end_of_data = "250-2.0.0 first line of the verdict\r\n250 2.0.0 Ok: queued as 77Q",
  };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_SENT);
  g_assert_cmpstr (outcome.detail, ==, "250 2.0.0 Ok: queued as 77Q");
  /* The server announced SIZE, so the client says how big the mail is. */
  g_autofree char *mail_from = g_strdup_printf ("MAIL FROM:<> SIZE=%zu", strlen (simple_message));
  g_assert_true (fake_server_received (server, mail_from));
}

static void
test_permanent_multi_line_rcpt_refusal (void)
{
  FakeScript script = {
    .rcpt = "550-5.1.1 <customer@example.test>: no such user\r\n550 5.1.1 see https://fake.test/why",
  };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_PERMANENT);
  g_assert_cmpstr (outcome.detail, ==, "550 5.1.1 see https://fake.test/why");
}

static void
test_temporary_connection_refused (void)
{
  /* A port that was just free and has nobody listening on it. */
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = 0 };
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &address, sizeof address), ==, 0);
  socklen_t address_length = sizeof address;
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) &address, &address_length), ==, 0);
  guint16 port = ntohs (address.sin_port);
  close (fd);

  g_auto (Outcome) outcome = deliver (NULL, port, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_autofree char *expected = g_strdup_printf ("connect to 127.0.0.1:%u: %s", (unsigned) port,
                                               g_strerror (ECONNREFUSED));
  g_assert_cmpstr (outcome.detail, ==, expected);
  g_assert_cmpfloat (outcome.seconds, <, 5.0);
}

static void
test_temporary_greeting_421 (void)
{
  FakeScript script = { .greeting = "421 4.3.2 fake.test Service not available" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_cmpstr (outcome.detail, ==, "421 4.3.2 fake.test Service not available");
  g_assert_false (fake_server_received (server, "MAIL"));
}

/* 5xx to the greeting and to EHLO and HELO: the server is not refusing this
 * mail, it is misconfigured or refusing us; an admin can fix that. */
static void
test_temporary_hello_refused (void)
{
  FakeScript script = {
    .ehlo = "550 5.7.1 go away",
    .helo = "550 5.7.1 still go away",
  };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_cmpstr (outcome.detail, ==, "550 5.7.1 still go away");
  g_assert_false (fake_server_received (server, "MAIL"));
}

static void
test_temporary_rcpt_450 (void)
{
  FakeScript script = { .rcpt = "450 4.2.0 <customer@example.test>: Recipient address rejected: Greylisted" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_cmpstr (outcome.detail, ==, script.rcpt);
  g_assert_false (fake_server_received (server, "DATA"));
}

static void
test_permanent_rcpt_550 (void)
{
  FakeScript script = { .rcpt = "550 5.1.1 <customer@example.test>: Recipient address rejected: User unknown" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_PERMANENT);
  g_assert_cmpstr (outcome.detail, ==, script.rcpt);
  g_assert_false (fake_server_received (server, "DATA"));
  g_assert_true (fake_server_received (server, "QUIT"));
}

static void
test_permanent_mail_553 (void)
{
  FakeScript script = { .mail = "553 5.1.8 Sender address rejected: Domain not found" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "desk@example.test", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_PERMANENT);
  g_assert_cmpstr (outcome.detail, ==, script.mail);
  g_assert_false (fake_server_received (server, "RCPT"));
}

static void
test_permanent_data_554 (void)
{
  FakeScript script = { .data = "554 5.5.1 Error: no valid recipients" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_PERMANENT);
  g_assert_cmpstr (outcome.detail, ==, script.data);
}

static void
test_permanent_end_of_data_554 (void)
{
  FakeScript script = { .end_of_data = "554 5.7.1 Message rejected as spam" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_PERMANENT);
  g_assert_cmpstr (outcome.detail, ==, script.end_of_data);
  g_assert_true (server->content_complete);
}

static void
test_temporary_end_of_data_452 (void)
{
  FakeScript script = { .end_of_data = "452 4.3.1 Insufficient system storage" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_cmpstr (outcome.detail, ==, script.end_of_data);
}

/* A bound on a hang, not a speed target. */
static void
test_temporary_silent_server_times_out (void)
{
  FakeScript script = { .greeting = FAKE_SILENT };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  TmSmtpOptions options = { .timeout_s = 2, .connect_timeout_s = 1 };
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  /* libcurl counts the greeting as part of connecting: connect_timeout_s. */
  g_assert_cmpstr (outcome.detail, ==, "timed out after 1 s waiting for the greeting");
  g_assert_cmpfloat (outcome.seconds, <, 10.0);
  g_assert_cmpuint (server->commands->len, ==, 0);
}

static gpointer
cancel_later (gpointer data)
{
  g_usleep (300 * 1000);
  tm_smtp_cancel_trigger (data);
  return NULL;
}

/* The daemon stops while a worker waits for a silent server: the wait ends
 * at once (not after the 30 s timeout), as a temporary failure. */
static void
test_temporary_cancelled_by_stop (void)
{
  FakeScript script = { .greeting = FAKE_SILENT };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  TmSmtpCancel *cancel = tm_smtp_cancel_new ();
  TmSmtpOptions options = { .timeout_s = 30, .connect_timeout_s = 30, .cancel = cancel };
  GThread *canceller = g_thread_new ("cancel", cancel_later, cancel);
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_thread_join (canceller);
  tm_smtp_cancel_free (cancel);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_cmpstr (outcome.detail, ==, "given up waiting for the greeting: the daemon is stopping");
  g_assert_cmpuint (server->commands->len, ==, 0);
}

/* With the switch already triggered, a call gives up before connecting;
 * with it untouched, the same options deliver. */
static void
test_cancel_set_before_start (void)
{
  FakeScript script = { 0 };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  TmSmtpCancel *cancel = tm_smtp_cancel_new ();
  TmSmtpOptions options = { .timeout_s = 10, .connect_timeout_s = 10, .cancel = cancel };
  g_auto (Outcome) first = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (first.result, ==, TM_SMTP_SENT);
  tm_smtp_cancel_trigger (cancel);
  /* The fake has hung up and closed its port: without the switch this
   * would be "connection refused". */
  g_auto (Outcome) second = deliver (NULL, server->port, &options, "", simple_message);
  g_assert_cmpint (second.result, ==, TM_SMTP_TEMPORARY);
  g_assert_true (g_str_has_suffix (second.detail, "the daemon is stopping"));
  tm_smtp_cancel_free (cancel);
}

static void
test_temporary_silent_after_data (void)
{
  FakeScript script = { .end_of_data = FAKE_SILENT };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  TmSmtpOptions options = { .timeout_s = 2, .connect_timeout_s = 1 };
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_cmpstr (outcome.detail, ==, "timed out after 2 s during the message data");
  /* Not 4 s: the wait for the reply to QUIT is held to timeout_s as well. */
  g_assert_cmpfloat (outcome.seconds, <, 3.8);
}

/* The mail was accepted; a server that then ignores QUIT changes nothing. */
static void
test_sent_when_quit_is_never_answered (void)
{
  FakeScript script = { .quit = FAKE_SILENT };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  TmSmtpOptions options = { .timeout_s = 2, .connect_timeout_s = 1 };
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_SENT);
  g_assert_cmpstr (outcome.detail, ==, "250 2.0.0 Ok: queued as 4XyzQ1");
  g_assert_cmpfloat (outcome.seconds, <, 10.0);
}

static void
test_temporary_closed_during_data (void)
{
  FakeScript script = { .close_during_data = TRUE };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  /* Large enough that the client is still writing when the line drops. */
  g_autoptr (GString) message = g_string_new ("Subject: big\r\n\r\n");
  while (message->len < 4 * 1024 * 1024)
    g_string_append (message, "0123456789 0123456789 0123456789 0123456789 0123456789 0123456789\r\n");
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", message->str);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_false (server->content_complete);
  g_assert_true (strstr (outcome.detail, "during the message data") != NULL);
}

static void
test_detail_is_sanitised (void)
{
  g_autoptr (GString) reply = g_string_new ("550 5.1.1 \x1b[31mno\x01such\x7f user\xff\xfe\tbye\r!");
  while (reply->len < 2000)
    g_string_append (reply, " very long");
  FakeScript script = { .rcpt = reply->str };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  g_auto (Outcome) outcome = deliver (server, 0, NULL, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_PERMANENT);
  g_assert_true (g_str_has_prefix (outcome.detail, "550 5.1.1 ?[31mno?such? user?? bye?! very long"));
  g_assert_true (g_str_has_suffix (outcome.detail, "..."));
  g_assert_cmpuint (strlen (outcome.detail), <=, 403);
}

static void
test_temporary_starttls_required_not_offered (void)
{
  g_autoptr (FakeServer) server = fake_server_start (NULL);
  TmSmtpOptions options = { .starttls = TM_SMTP_STARTTLS_REQUIRE, .timeout_s = 10 };
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_autofree char *expected = g_strdup_printf ("STARTTLS is required but 127.0.0.1:%u did not offer it",
                                               (unsigned) server->port);
  g_assert_cmpstr (outcome.detail, ==, expected);
  g_assert_false (fake_server_received (server, "MAIL"));
}

static void
test_temporary_starttls_refused (void)
{
  FakeScript script = { .ehlo = "250-fake.test\r\n250 STARTTLS" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  TmSmtpOptions options = { .starttls = TM_SMTP_STARTTLS_REQUIRE, .timeout_s = 10 };
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_cmpstr (outcome.detail, ==, "454 4.7.0 TLS not available");
  g_assert_true (fake_server_received (server, "STARTTLS"));
  g_assert_false (fake_server_received (server, "MAIL"));
}

static void
test_delivery_with_auth_plain (void)
{
  FakeScript script = { .ehlo = "250-fake.test\r\n250 AUTH PLAIN" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  TmSmtpOptions options = { .username = "desk", .password = "s3cret", .timeout_s = 10 };
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_SENT);
  /* AUTH PLAIN carries "\0user\0password" in base64, in the command itself
   * or as the answer to 334. */
  const char *credentials = NULL;
  for (guint i = 0; i < server->commands->len; i++)
    {
      const char *command = g_ptr_array_index (server->commands, i);
      if (g_str_has_prefix (command, "AUTH PLAIN "))
        credentials = command + strlen ("AUTH PLAIN ");
      else if (strcmp (command, "AUTH PLAIN") == 0 && i + 1 < server->commands->len)
        credentials = g_ptr_array_index (server->commands, i + 1);
    }
  g_assert_nonnull (credentials);
  gsize length = 0;
  g_autofree guchar *decoded = g_base64_decode (credentials, &length);
  g_assert_cmpmem (decoded, length, "\0desk\0s3cret", 12);
}

static void
test_temporary_auth_rejected (void)
{
  FakeScript script = {
    .ehlo = "250-fake.test\r\n250 AUTH PLAIN",
    .auth = "535 5.7.8 Error: authentication failed for s3cret",
  };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  TmSmtpOptions options = { .username = "desk", .password = "s3cret", .timeout_s = 10 };
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_cmpstr (outcome.detail, ==, "535 5.7.8 Error: authentication failed for ********");
  g_assert_false (fake_server_received (server, "MAIL"));
}

/* With credentials configured, "relay denied" from a server that offered no
 * AUTH means our login never happened: an admin's problem, not the mail's. */
static void
test_temporary_relay_denied_without_offered_auth (void)
{
  FakeScript script = { .rcpt = "554 5.7.1 <customer@example.test>: Relay access denied" };
  g_autoptr (FakeServer) server = fake_server_start (&script);
  TmSmtpOptions options = { .username = "desk", .password = "s3cret", .timeout_s = 10 };
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_TEMPORARY);
  g_assert_true (g_str_has_prefix (outcome.detail, script.rcpt));
  g_assert_false (fake_server_received (server, "AUTH"));
}

/* A CR LF in an address would let a customer's mail inject SMTP commands. */
static void
test_permanent_hostile_addresses_never_sent (void)
{
  g_autoptr (FakeServer) server = fake_server_start (NULL);
  g_autofree char *url = g_strdup_printf ("smtp://127.0.0.1:%u", (unsigned) server->port);
  TmSmtpOptions options = { .url = url, .timeout_s = 10 };
  const char *recipients[] = { "a@example.test>\r\nRCPT TO:<b@example.test", "", "x\x01@y" };
  for (gsize i = 0; i < G_N_ELEMENTS (recipients); i++)
    {
      g_autofree char *detail = NULL;
      TmSmtpResult result = tm_smtp_send (&options, "", recipients[i], simple_message,
                                          strlen (simple_message), &detail);
      g_assert_cmpint (result, ==, TM_SMTP_PERMANENT);
      g_assert_true (is_printable_line (detail));
    }
  g_autofree char *detail = NULL;
  TmSmtpResult result = tm_smtp_send (&options, "x@y>\nRSET", "customer@example.test",
                                      simple_message, strlen (simple_message), &detail);
  g_assert_cmpint (result, ==, TM_SMTP_PERMANENT);
  g_assert_true (is_printable_line (detail));
  /* Now a good one, so that the fake's only connection shows what came. */
  g_auto (Outcome) outcome = deliver (server, 0, &options, "", simple_message);
  g_assert_cmpint (outcome.result, ==, TM_SMTP_SENT);
  g_assert_cmpuint (server->commands->len, ==, 5);
}

static void
test_temporary_bad_configuration (void)
{
  struct { TmSmtpOptions options; const char *detail_start; } cases[] = {
    { { .url = "file:///tmp/outbox" }, "invalid SMTP URL" },
    { { .url = "http://127.0.0.1:80" }, "invalid SMTP URL" },
    { { .url = "smtp://127.0.0.1 :25" }, "invalid SMTP URL" },
    { { .url = "smtp://127.0.0.1:25", .helo_name = "a b\r\nRSET" }, "invalid HELO name" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *detail = NULL;
      TmSmtpResult result = tm_smtp_send (&cases[i].options, "", "customer@example.test",
                                          simple_message, strlen (simple_message), &detail);
      g_assert_cmpint (result, ==, TM_SMTP_TEMPORARY);
      g_assert_true (g_str_has_prefix (detail, cases[i].detail_start));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tm_smtp_global_init ();

  g_test_add_func ("/smtp/result-names", test_result_names);
  g_test_add_func ("/smtp/sent/transcript-null-sender-dot-stuffing", test_delivery_transcript);
  g_test_add_func ("/smtp/sent/leading-dot-and-no-final-line-end",
                   test_delivery_leading_dot_and_no_final_line_end);
  g_test_add_func ("/smtp/sent/bare-line-ends-become-crlf", test_delivery_bare_line_ends_become_crlf);
  g_test_add_func ("/smtp/sent/multi-line-replies", test_delivery_multi_line_replies);
  g_test_add_func ("/smtp/sent/auth-plain", test_delivery_with_auth_plain);
  g_test_add_func ("/smtp/sent/quit-never-answered", test_sent_when_quit_is_never_answered);
  g_test_add_func ("/smtp/temporary/connection-refused", test_temporary_connection_refused);
  g_test_add_func ("/smtp/temporary/greeting-421", test_temporary_greeting_421);
  g_test_add_func ("/smtp/temporary/ehlo-and-helo-550", test_temporary_hello_refused);
  g_test_add_func ("/smtp/temporary/rcpt-450", test_temporary_rcpt_450);
  g_test_add_func ("/smtp/temporary/end-of-data-452", test_temporary_end_of_data_452);
  g_test_add_func ("/smtp/temporary/silent-server-times-out", test_temporary_silent_server_times_out);
  g_test_add_func ("/smtp/temporary/silent-after-data-times-out", test_temporary_silent_after_data);
  g_test_add_func ("/smtp/temporary/cancelled-by-stop", test_temporary_cancelled_by_stop);
  g_test_add_func ("/smtp/temporary/cancel-set-before-start", test_cancel_set_before_start);
  g_test_add_func ("/smtp/temporary/closed-during-data", test_temporary_closed_during_data);
  g_test_add_func ("/smtp/temporary/starttls-required-not-offered",
                   test_temporary_starttls_required_not_offered);
  g_test_add_func ("/smtp/temporary/starttls-refused", test_temporary_starttls_refused);
  g_test_add_func ("/smtp/temporary/auth-535", test_temporary_auth_rejected);
  g_test_add_func ("/smtp/temporary/relay-denied-without-offered-auth",
                   test_temporary_relay_denied_without_offered_auth);
  g_test_add_func ("/smtp/temporary/bad-configuration", test_temporary_bad_configuration);
  g_test_add_func ("/smtp/permanent/rcpt-550", test_permanent_rcpt_550);
  g_test_add_func ("/smtp/permanent/rcpt-550-multi-line", test_permanent_multi_line_rcpt_refusal);
  g_test_add_func ("/smtp/permanent/mail-553", test_permanent_mail_553);
  g_test_add_func ("/smtp/permanent/data-554", test_permanent_data_554);
  g_test_add_func ("/smtp/permanent/end-of-data-554", test_permanent_end_of_data_554);
  g_test_add_func ("/smtp/permanent/hostile-addresses-never-sent",
                   test_permanent_hostile_addresses_never_sent);
  g_test_add_func ("/smtp/detail/control-bytes-sanitised", test_detail_is_sanitised);
  return g_test_run ();
}
