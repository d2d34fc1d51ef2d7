/* smtp_client.c - hand one mail to an MTA over SMTP with libcurl.
 *
 * Synopsis:
 *   tm_smtp_global_init ();                        once, before any thread
 *   TmSmtpResult r = tm_smtp_send (&options, "", "customer@example.com",
 *                                  data, length, &detail);
 *   ... log tm_smtp_result_name (r) and detail ...; g_free (detail);
 *
 * One call is one connection and one SMTP transaction (EHLO, optional
 * STARTTLS and AUTH, MAIL, one RCPT, DATA, QUIT); libcurl speaks the
 * protocol, does the dot-stuffing and sends the final ".". What libcurl does
 * not tell us is *which* command a server refused: its error codes lump a 5xx
 * to MAIL together with a 5xx to HELO. So libcurl runs verbose into a debug
 * callback that watches the command verbs going out and the reply lines
 * coming in, and the outcome is judged from that:
 *   - 250 after the message data: sent; detail is that reply line.
 *   - a 5xx answering MAIL, RCPT, DATA or the message data: permanent.
 *   - everything else (no connection, timeouts, TLS, a 4xx, a 5xx to the
 *     greeting, EHLO/HELO, STARTTLS or AUTH): temporary, since an admin can
 *     fix it and the mail must not be lost meanwhile. A 5xx to RCPT when
 *     credentials are configured but the server offered no AUTH is temporary
 *     too: it is almost certainly "relay denied" for a missing login.
 *
 * Defences, because the data and the recipient come from customers' mail:
 *   - addresses with control characters or angle brackets are refused
 *     (permanent) before connecting: a CR LF would inject SMTP commands;
 *   - bare CR and bare LF in the data become CRLF before libcurl's
 *     dot-stuffing sees it, so "\n.\r\n" cannot end the data early (SMTP
 *     smuggling) and every line that starts with "." is stuffed;
 *   - only smtp:// and smtps:// URLs are followed;
 *   - detail is one line of printable ASCII, at most DETAIL_MAX_LENGTH bytes,
 *     and never holds the password (masked even if a server echoes it). AUTH
 *     lines going out are looked at for their verb only.
 *
 * Time limits: timeout_s bounds the whole call (CURLOPT_TIMEOUT covers
 * connect and transfer; a progress callback also cuts short libcurl's wait
 * for the reply to QUIT, which CURLOPT_TIMEOUT does not cover), give or take
 * a second. connect_timeout_s is libcurl's connection phase, which for SMTP
 * is the TCP connect, TLS, the greeting, EHLO, STARTTLS and AUTH: a server
 * that greets slowly (a postscreen pause) needs a connect timeout above it.
 *
 * Limits: one recipient per call; the EHLO name is carried in the URL's path
 * (libcurl's way), so a path already in the URL is replaced when helo_name is
 * set. Thread-safe after tm_smtp_global_init(): every call has its own
 * handle and state, and CURLOPT_NOSIGNAL keeps libcurl away from signals.
 */
#include "smtp_client.h"

#include <curl/curl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_CONNECT_TIMEOUT_S 10
#define DEFAULT_TIMEOUT_S 60
/* Long enough for any sensible reply text, short enough for one log line. */
#define DETAIL_MAX_LENGTH 400

/* The last command the client sent, which the server's latest reply answers. */
typedef enum {
  STEP_CONNECT,      /* nothing sent yet: connecting, TLS, the greeting */
  STEP_HELLO,        /* EHLO or HELO */
  STEP_STARTTLS,
  STEP_AUTH,         /* AUTH and the SASL exchange after it */
  STEP_MAIL,
  STEP_RCPT,
  STEP_DATA,         /* DATA sent, waiting for 354 */
  STEP_CONTENT,      /* message data going out, or waiting for its verdict */
  STEP_OTHER,        /* RSET, NOOP: libcurl does not send them today */
} SmtpStep;

typedef struct {
  /* What the server is telling us; filled by the debug callback. */
  SmtpStep step;
  gboolean auth_sent;
  /* libcurl says QUIT on its way out, also after a refusal: from then on
   * nothing changes what the transaction's outcome was. */
  gboolean quit_sent;
  gint64 quit_sent_at;          /* monotonic microseconds */
  GString *reply_line;          /* last line of the latest complete reply, raw */
  int reply_code;               /* its code, 0 before the first reply */
  gboolean reply_is_current;    /* it answers `step`, nothing was sent since */
  /* The message going out through the read callback. */
  const GString *content;
  gsize content_offset;
  gint64 deadline;              /* monotonic microseconds; see on_curl_progress */
  TmSmtpCancel *cancel;         /* TmSmtpOptions.cancel, or NULL */
  curl_socket_t socket;         /* registered with cancel while open */
  gboolean cancelled;           /* given up because of cancel (under its lock) */
} SmtpTransaction;

struct TmSmtpCancel {
  GMutex lock;                  /* guards everything below, and the step
                                   change to STEP_CONTENT of a registered call */
  gboolean triggered;
  GPtrArray *open;              /* of SmtpTransaction*: calls with a socket */
};

TmSmtpCancel *
tm_smtp_cancel_new (void)
{
  TmSmtpCancel *cancel = g_new0 (TmSmtpCancel, 1);
  g_mutex_init (&cancel->lock);
  cancel->open = g_ptr_array_new ();
  return cancel;
}

void
tm_smtp_cancel_free (TmSmtpCancel *cancel)
{
  if (cancel == NULL)
    return;
  g_ptr_array_unref (cancel->open);
  g_mutex_clear (&cancel->lock);
  g_free (cancel);
}

/* Cuts the calls that may be cut: those whose message data has not started.
 * Under the lock, a call cannot move on to its data meanwhile (see
 * on_curl_debug), so a mail is never cut after its final dot, which the
 * server might already have taken. */
void
tm_smtp_cancel_trigger (TmSmtpCancel *cancel)
{
  g_mutex_lock (&cancel->lock);
  cancel->triggered = TRUE;
  for (guint i = 0; i < cancel->open->len; i++)
    {
      SmtpTransaction *transaction = g_ptr_array_index (cancel->open, i);
      if (transaction->step < STEP_CONTENT)
        {
          transaction->cancelled = TRUE;
          shutdown (transaction->socket, SHUT_RDWR);
        }
    }
  g_mutex_unlock (&cancel->lock);
}

/* libcurl's socket comes from here, so that a trigger can shut it down. */
static curl_socket_t
on_curl_open_socket (void *user_data, curlsocktype purpose, struct curl_sockaddr *address)
{
  SmtpTransaction *transaction = user_data;
  TmSmtpCancel *cancel = transaction->cancel;
  g_mutex_lock (&cancel->lock);
  curl_socket_t fd = CURL_SOCKET_BAD;
  if (cancel->triggered)
    transaction->cancelled = TRUE;
  else
    {
      fd = socket (address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
      if (fd != CURL_SOCKET_BAD)
        {
          transaction->socket = fd;
          g_ptr_array_add (cancel->open, transaction);
        }
    }
  g_mutex_unlock (&cancel->lock);
  return fd;
}

static int
on_curl_close_socket (void *user_data, curl_socket_t fd)
{
  SmtpTransaction *transaction = user_data;
  TmSmtpCancel *cancel = transaction->cancel;
  g_mutex_lock (&cancel->lock);
  g_ptr_array_remove_fast (cancel->open, transaction);
  transaction->socket = CURL_SOCKET_BAD;
  g_mutex_unlock (&cancel->lock);
  return close (fd);
}

const char *
tm_smtp_result_name (TmSmtpResult result)
{
  switch (result)
    {
    case TM_SMTP_SENT: return "sent";
    case TM_SMTP_TEMPORARY: return "temporary";
    case TM_SMTP_PERMANENT: return "permanent";
    }
  g_return_val_if_reached ("unknown");
}

void
tm_smtp_global_init (void)
{
  CURLcode code = curl_global_init (CURL_GLOBAL_DEFAULT);
  if (code != CURLE_OK)
    g_error ("libcurl cannot start: %s", curl_easy_strerror (code));
}

static const char *
step_phrase (SmtpStep step)
{
  switch (step)
    {
    case STEP_CONNECT: return "waiting for the greeting";
    case STEP_HELLO: return "after EHLO";
    case STEP_STARTTLS: return "after STARTTLS";
    case STEP_AUTH: return "during AUTH";
    case STEP_MAIL: return "after MAIL FROM";
    case STEP_RCPT: return "after RCPT TO";
    case STEP_DATA: return "after DATA";
    case STEP_CONTENT: return "during the message data";
    case STEP_OTHER: return "after a command";
    }
  g_return_val_if_reached ("");
}

/* One line of printable ASCII from whatever a server or libcurl said:
 * the password masked first (a server may echo it), other bytes outside
 * 0x20..0x7e shown as '?', cut at DETAIL_MAX_LENGTH. */
static char *
printable_detail (const char *text, gsize length, const char *password)
{
  g_autoptr (GString) raw = g_string_new_len (text, (gssize) length);
  if (password != NULL && password[0] != '\0')
    g_string_replace (raw, password, "********", 0);

  GString *line = g_string_sized_new (MIN (raw->len, DETAIL_MAX_LENGTH) + 4);
  gsize at = 0;
  for (; at < raw->len && line->len < DETAIL_MAX_LENGTH; at++)
    {
      guchar byte = (guchar) raw->str[at];
      if (byte == '\t')
        g_string_append_c (line, ' ');
      else if (byte >= 0x20 && byte < 0x7f)
        g_string_append_c (line, (char) byte);
      else
        g_string_append_c (line, '?');
    }
  if (at < raw->len)
    g_string_append (line, "...");
  g_strstrip (line->str);
  return g_string_free (line, FALSE);
}

static SmtpStep
step_for_verb (const char *verb, gsize length, SmtpStep current)
{
  static const struct { const char *verb; SmtpStep step; } verbs[] = {
    { "EHLO", STEP_HELLO }, { "HELO", STEP_HELLO }, { "STARTTLS", STEP_STARTTLS },
    { "AUTH", STEP_AUTH }, { "MAIL", STEP_MAIL }, { "RCPT", STEP_RCPT },
    { "DATA", STEP_DATA }, { "RSET", STEP_OTHER },
    { "NOOP", STEP_OTHER },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    if (strlen (verbs[i].verb) == length
        && g_ascii_strncasecmp (verb, verbs[i].verb, length) == 0)
      return verbs[i].step;
  /* Not a command: the end-of-data mark, or something libcurl added later. */
  return current;
}

static void
note_command (SmtpTransaction *transaction, const char *text, gsize length)
{
  /* In the middle of a SASL exchange (the server said 334) the line is a
   * credential, not a command: do not even look at it. */
  if (transaction->step == STEP_AUTH && transaction->reply_code == 334
      && transaction->reply_is_current)
    {
      transaction->reply_is_current = FALSE;
      return;
    }
  gsize verb_length = 0;
  while (verb_length < length && g_ascii_isalpha (text[verb_length]))
    verb_length++;
  if (verb_length == 4 && g_ascii_strncasecmp (text, "QUIT", 4) == 0)
    {
      transaction->quit_sent = TRUE;
      transaction->quit_sent_at = g_get_monotonic_time ();
      return;
    }
  /* The step is read by a trigger in another thread, under its lock. */
  if (transaction->cancel != NULL)
    g_mutex_lock (&transaction->cancel->lock);
  transaction->step = step_for_verb (text, verb_length, transaction->step);
  if (transaction->cancel != NULL)
    g_mutex_unlock (&transaction->cancel->lock);
  if (transaction->step == STEP_AUTH)
    transaction->auth_sent = TRUE;
  transaction->reply_is_current = FALSE;
}

static void
note_reply_lines (SmtpTransaction *transaction, const char *text, gsize length)
{
  if (transaction->quit_sent)
    return;
  const char *end = text + length;
  while (text < end)
    {
      const char *newline = memchr (text, '\n', (gsize) (end - text));
      const char *line_end = newline != NULL ? newline : end;
      gsize line_length = (gsize) (line_end - text);
      if (line_length > 0 && text[line_length - 1] == '\r')
        line_length--;
      /* "250-..." continues a reply; "250 ..." or a bare "250" ends it. */
      gboolean continues = line_length > 3 && text[3] == '-';
      if (!continues && line_length > 0)
        {
          g_string_truncate (transaction->reply_line, 0);
          g_string_append_len (transaction->reply_line, text, (gssize) line_length);
          transaction->reply_code = 0;
          if (line_length >= 3 && g_ascii_isdigit (text[0]) && g_ascii_isdigit (text[1])
              && g_ascii_isdigit (text[2]))
            transaction->reply_code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
          transaction->reply_is_current = TRUE;
        }
      text = newline != NULL ? newline + 1 : end;
    }
}

static int
on_curl_debug (CURL *curl, curl_infotype type, char *text, size_t length, void *user_data)
{
  SmtpTransaction *transaction = user_data;
  if (transaction->quit_sent)
    return 0;
  switch (type)
    {
    case CURLINFO_HEADER_OUT:
      note_command (transaction, text, length);
      break;
    case CURLINFO_HEADER_IN:
      note_reply_lines (transaction, text, length);
      break;
    case CURLINFO_DATA_OUT:
      if (transaction->step == STEP_DATA)
        {
          /* Past this, a stop no longer cuts the call (see the trigger). */
          if (transaction->cancel != NULL)
            g_mutex_lock (&transaction->cancel->lock);
          if (!transaction->cancelled)
            transaction->step = STEP_CONTENT;
          if (transaction->cancel != NULL)
            g_mutex_unlock (&transaction->cancel->lock);
        }
      transaction->reply_is_current = FALSE;
      break;
    default:
      break;
    }
  return 0;
}

static size_t
on_curl_read (char *buffer, size_t size, size_t count, void *user_data)
{
  SmtpTransaction *transaction = user_data;
  gsize left = transaction->content->len - transaction->content_offset;
  gsize chunk = MIN (left, size * count);
  memcpy (buffer, transaction->content->str + transaction->content_offset, chunk);
  transaction->content_offset += chunk;
  return chunk;
}

/* libcurl closes the connection with QUIT and waits for the reply with
 * CURLOPT_SERVER_RESPONSE_TIMEOUT only, even after CURLOPT_TIMEOUT has
 * expired; this callback, which it keeps calling while it waits, holds the
 * whole call to timeout_s. */
static int
on_curl_progress (void *user_data, curl_off_t download_total, curl_off_t download_now,
                  curl_off_t upload_total, curl_off_t upload_now)
{
  const SmtpTransaction *transaction = user_data;
  return g_get_monotonic_time () > transaction->deadline ? 1 : 0;
}

/* Every line end becomes CRLF, so that libcurl's dot-stuffing (which only
 * knows CRLF) sees every line start and a stray "\n.\r\n" cannot end the
 * data early at a server that accepts bare LF. */
static GString *
content_with_crlf (const char *data, gsize length)
{
  GString *content = g_string_sized_new (length + length / 64 + 2);
  gsize run_start = 0;
  for (gsize at = 0; at < length; at++)
    {
      if (data[at] != '\r' && data[at] != '\n')
        continue;
      g_string_append_len (content, data + run_start, (gssize) (at - run_start));
      g_string_append (content, "\r\n");
      if (data[at] == '\r' && at + 1 < length && data[at + 1] == '\n')
        at++;
      run_start = at + 1;
    }
  g_string_append_len (content, data + run_start, (gssize) (length - run_start));
  return content;
}

/* A path in MAIL FROM:<...> or RCPT TO:<...> must stay one token on one line. */
static gboolean
address_is_safe (const char *address)
{
  for (const guchar *at = (const guchar *) address; *at != '\0'; at++)
    if (*at < 0x20 || *at == 0x7f || *at == '<' || *at == '>')
      return FALSE;
  return TRUE;
}

static gboolean
helo_name_is_safe (const char *name)
{
  if (name[0] == '\0')
    return FALSE;
  for (const char *at = name; *at != '\0'; at++)
    if (!g_ascii_isalnum (*at) && strchr (".-[]:", *at) == NULL)
      return FALSE;
  return TRUE;
}

/* "host:port" from the URL for messages; never the userinfo part. */
static char *
url_endpoint (CURLU *url)
{
  char *host = NULL;
  char *port = NULL;
  curl_url_get (url, CURLUPART_HOST, &host, 0);
  curl_url_get (url, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  char *endpoint = g_strdup_printf ("%s:%s", host != NULL ? host : "?", port != NULL ? port : "?");
  curl_free (host);
  curl_free (port);
  return endpoint;
}

/* Sets up URL (with the EHLO name as its path) or says why not. */
static char *
prepare_url (const TmSmtpOptions *options, CURLU *url)
{
  CURLUcode code = curl_url_set (url, CURLUPART_URL, options->url, 0);
  if (code != CURLUE_OK)
    return g_strdup_printf ("invalid SMTP URL: %s", curl_url_strerror (code));
  char *scheme = NULL;
  curl_url_get (url, CURLUPART_SCHEME, &scheme, 0);
  gboolean is_smtp = scheme != NULL
    && (g_ascii_strcasecmp (scheme, "smtp") == 0 || g_ascii_strcasecmp (scheme, "smtps") == 0);
  curl_free (scheme);
  if (!is_smtp)
    return g_strdup ("invalid SMTP URL: the scheme must be smtp or smtps");
  if (options->helo_name != NULL)
    {
      if (!helo_name_is_safe (options->helo_name))
        return g_strdup ("invalid HELO name: use a host name or an address literal");
      g_autofree char *path = g_strconcat ("/", options->helo_name, NULL);
      code = curl_url_set (url, CURLUPART_PATH, path, 0);
      if (code != CURLUE_OK)
        return g_strdup_printf ("invalid HELO name: %s", curl_url_strerror (code));
    }
  return NULL;
}

static long
use_ssl_level (TmSmtpStarttls starttls)
{
  switch (starttls)
    {
    case TM_SMTP_STARTTLS_NO: return CURLUSESSL_NONE;
    case TM_SMTP_STARTTLS_TRY: return CURLUSESSL_TRY;
    case TM_SMTP_STARTTLS_REQUIRE: return CURLUSESSL_ALL;
    }
  g_return_val_if_reached (CURLUSESSL_ALL);
}

/* Why the transaction failed when no 4xx/5xx reply says it. */
static char *
describe_failure (CURLcode code, const SmtpTransaction *transaction, const char *endpoint,
                  const char *error_text, long os_errno, gboolean connected,
                  guint elapsed_s)
{
  const char *curl_text = error_text[0] != '\0' ? error_text : curl_easy_strerror (code);
  switch (code)
    {
    case CURLE_COULDNT_CONNECT:
      if (os_errno != 0)
        return g_strdup_printf ("connect to %s: %s", endpoint, g_strerror ((int) os_errno));
      return g_strdup_printf ("connect to %s: %s", endpoint, curl_text);
    case CURLE_COULDNT_RESOLVE_HOST:
      return g_strdup_printf ("resolve %s: %s", endpoint, curl_text);
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_ABORTED_BY_CALLBACK:  /* only on_curl_progress aborts */
      if (!connected)
        return g_strdup_printf ("connect to %s: timed out after %u s", endpoint, elapsed_s);
      return g_strdup_printf ("timed out after %u s %s", elapsed_s, step_phrase (transaction->step));
    case CURLE_USE_SSL_FAILED:
      return g_strdup_printf ("STARTTLS is required but %s did not offer it", endpoint);
    case CURLE_LOGIN_DENIED:
      return g_strdup_printf ("AUTH failed: %s", curl_text);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return g_strdup_printf ("TLS with %s: %s", endpoint, curl_text);
    default:
      return g_strdup_printf ("%s %s", curl_text, step_phrase (transaction->step));
    }
}

/* What one finished libcurl call means: SENT, TEMPORARY or PERMANENT, and
 * the detail to log (see the top of this file). */
typedef struct {
  CURLcode code;
  SmtpTransaction *transaction;
  const char *endpoint;
  const char *error_text;
  long os_errno;
  curl_off_t connect_time_us;
  guint elapsed_s;
  const char *password;
} Attempt;

static TmSmtpResult
judge (const TmSmtpOptions *options, const Attempt *attempt, char **detail)
{
  SmtpTransaction *transaction = attempt->transaction;
  if (attempt->code == CURLE_OK)
    {
      *detail = transaction->reply_line->len > 0
        ? printable_detail (transaction->reply_line->str, transaction->reply_line->len, attempt->password)
        : g_strdup ("accepted");
      return TM_SMTP_SENT;
    }

  gboolean refused = transaction->reply_is_current && transaction->reply_code >= 400
    && transaction->reply_code < 600;
  if (refused)
    {
      *detail = printable_detail (transaction->reply_line->str, transaction->reply_line->len, attempt->password);
      if (transaction->reply_code < 500)
        return TM_SMTP_TEMPORARY;
      gboolean about_the_mail = transaction->step == STEP_MAIL || transaction->step == STEP_RCPT
        || transaction->step == STEP_DATA || transaction->step == STEP_CONTENT;
      if (about_the_mail && options->username != NULL && !transaction->auth_sent)
        {
          char *refusal = *detail;
          *detail = g_strdup_printf ("%s (credentials are configured but the server offered no AUTH)",
                                     refusal);
          g_free (refusal);
          return TM_SMTP_TEMPORARY;
        }
      return about_the_mail ? TM_SMTP_PERMANENT : TM_SMTP_TEMPORARY;
    }

  gboolean cancelled = FALSE;
  if (options->cancel != NULL)
    {
      g_mutex_lock (&options->cancel->lock);
      cancelled = transaction->cancelled;
      g_mutex_unlock (&options->cancel->lock);
    }
  if (cancelled)
    {
      *detail = g_strdup_printf ("given up %s: the daemon is stopping", step_phrase (transaction->step));
      return TM_SMTP_TEMPORARY;
    }
  gboolean connected = attempt->connect_time_us > 0 || transaction->reply_code != 0;
  g_autofree char *description = describe_failure (attempt->code, transaction, attempt->endpoint,
                                                   attempt->error_text, attempt->os_errno,
                                                   connected, attempt->elapsed_s);
  *detail = printable_detail (description, strlen (description), attempt->password);
  return TM_SMTP_TEMPORARY;
}

static TmSmtpResult
send_mail (const TmSmtpOptions *options, const char *envelope_sender, const char *recipient,
           const char *data, gsize length, char **detail, gboolean *concluded)
{
  g_assert (options != NULL && options->url != NULL);
  g_assert (envelope_sender != NULL && recipient != NULL);
  g_assert (data != NULL || length == 0);
  g_assert (detail != NULL);
  const char *password = options->password;

  /* A bad address never gets better by waiting. */
  if (recipient[0] == '\0' || !address_is_safe (recipient))
    {
      g_autofree char *quoted = g_strescape (recipient, NULL);
      *detail = g_strdup_printf ("refusing recipient \"%.200s\": empty or with control characters", quoted);
      return TM_SMTP_PERMANENT;
    }
  if (!address_is_safe (envelope_sender))
    {
      g_autofree char *quoted = g_strescape (envelope_sender, NULL);
      *detail = g_strdup_printf ("refusing envelope sender \"%.200s\": control characters", quoted);
      return TM_SMTP_PERMANENT;
    }

  CURLU *url = curl_url ();
  if (url == NULL)
    {
      *detail = g_strdup ("out of memory for the SMTP URL");
      return TM_SMTP_TEMPORARY;
    }
  char *url_problem = prepare_url (options, url);
  if (url_problem != NULL)
    {
      *detail = url_problem;
      curl_url_cleanup (url);
      return TM_SMTP_TEMPORARY;
    }
  g_autofree char *endpoint = url_endpoint (url);

  CURL *curl = curl_easy_init ();
  if (curl == NULL)
    {
      *detail = g_strdup ("cannot create a libcurl handle");
      curl_url_cleanup (url);
      return TM_SMTP_TEMPORARY;
    }

  guint connect_timeout_s = options->connect_timeout_s != 0
    ? options->connect_timeout_s : DEFAULT_CONNECT_TIMEOUT_S;
  guint timeout_s = options->timeout_s != 0 ? options->timeout_s : DEFAULT_TIMEOUT_S;
  g_autoptr (GString) content = content_with_crlf (data != NULL ? data : "", length);
  g_autoptr (GString) reply_line = g_string_new (NULL);
  gint64 start = g_get_monotonic_time ();
  SmtpTransaction transaction = {
    .step = STEP_CONNECT,
    .reply_line = reply_line,
    .content = content,
    .deadline = start + timeout_s * G_GINT64_CONSTANT (1000000),
    .cancel = options->cancel,
    .socket = CURL_SOCKET_BAD,
  };
  char error_text[CURL_ERROR_SIZE] = "";
  struct curl_slist *recipients = curl_slist_append (NULL, recipient);

  curl_easy_setopt (curl, CURLOPT_CURLU, url);
  curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, error_text);
  /* We run in a worker thread: no SIGALRM for timeouts, no SIGPIPE. */
  curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
  /* One mail, one connection: QUIT before returning, nothing cached. */
  curl_easy_setopt (curl, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT, (long) connect_timeout_s);
  curl_easy_setopt (curl, CURLOPT_TIMEOUT, (long) timeout_s);
  /* Per reply; libcurl's own default (120 s) would outlast timeout_s in the
   * one wait CURLOPT_TIMEOUT does not cover, the reply to QUIT. */
  curl_easy_setopt (curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, (long) timeout_s);
  curl_easy_setopt (curl, CURLOPT_USE_SSL, use_ssl_level (options->starttls));
  curl_easy_setopt (curl, CURLOPT_SSL_VERIFYPEER, options->verify_peer ? 1L : 0L);
  curl_easy_setopt (curl, CURLOPT_SSL_VERIFYHOST, options->verify_peer ? 2L : 0L);
  if (options->ca_file != NULL)
    curl_easy_setopt (curl, CURLOPT_CAINFO, options->ca_file);
  if (options->username != NULL)
    {
      curl_easy_setopt (curl, CURLOPT_USERNAME, options->username);
      curl_easy_setopt (curl, CURLOPT_PASSWORD, password != NULL ? password : "");
    }
  /* Left unset, libcurl sends the null reverse-path "MAIL FROM:<>". */
  if (envelope_sender[0] != '\0')
    curl_easy_setopt (curl, CURLOPT_MAIL_FROM, envelope_sender);
  curl_easy_setopt (curl, CURLOPT_MAIL_RCPT, recipients);
  curl_easy_setopt (curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt (curl, CURLOPT_READFUNCTION, on_curl_read);
  curl_easy_setopt (curl, CURLOPT_READDATA, &transaction);
  /* Lets a server that announces SIZE refuse a huge mail at MAIL already. */
  curl_easy_setopt (curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) content->len);
  curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, on_curl_progress);
  curl_easy_setopt (curl, CURLOPT_XFERINFODATA, &transaction);
  curl_easy_setopt (curl, CURLOPT_VERBOSE, 1L);
  curl_easy_setopt (curl, CURLOPT_DEBUGFUNCTION, on_curl_debug);
  curl_easy_setopt (curl, CURLOPT_DEBUGDATA, &transaction);
  if (options->cancel != NULL)
    {
      curl_easy_setopt (curl, CURLOPT_OPENSOCKETFUNCTION, on_curl_open_socket);
      curl_easy_setopt (curl, CURLOPT_OPENSOCKETDATA, &transaction);
      curl_easy_setopt (curl, CURLOPT_CLOSESOCKETFUNCTION, on_curl_close_socket);
      curl_easy_setopt (curl, CURLOPT_CLOSESOCKETDATA, &transaction);
    }

  CURLcode code = curl_easy_perform (curl);
  /* How long the transaction took, without the goodbye. */
  gint64 elapsed_us = (transaction.quit_sent ? transaction.quit_sent_at : g_get_monotonic_time ())
    - start;
  guint elapsed_s = (guint) MAX (1, (elapsed_us + G_USEC_PER_SEC / 2) / G_USEC_PER_SEC);

  long os_errno = 0;
  curl_off_t connect_time_us = 0;
  curl_easy_getinfo (curl, CURLINFO_OS_ERRNO, &os_errno);
  curl_easy_getinfo (curl, CURLINFO_CONNECT_TIME_T, &connect_time_us);
  Attempt attempt = {
    .code = code, .transaction = &transaction, .endpoint = endpoint, .error_text = error_text,
    .os_errno = os_errno, .connect_time_us = connect_time_us, .elapsed_s = elapsed_s,
    .password = password,
  };
  TmSmtpResult result = judge (options, &attempt, detail);
  if (options->on_outcome != NULL)
    options->on_outcome (result, *detail, options->on_outcome_data);
  *concluded = TRUE;
  /* The goodbye (QUIT and its reply) happens here, after the outcome is
   * known and, through on_outcome, recorded. */
  curl_easy_cleanup (curl);
  curl_slist_free_all (recipients);
  curl_url_cleanup (url);
  return result;
}

TmSmtpResult
tm_smtp_send (const TmSmtpOptions *options, const char *envelope_sender,
              const char *recipient, const char *data, gsize length,
              char **detail)
{
  gboolean concluded = FALSE;
  TmSmtpResult result = send_mail (options, envelope_sender, recipient, data, length, detail,
                                   &concluded);
  /* Refused before any connection (a bad address or URL): the caller hears
   * the outcome all the same. */
  if (!concluded && options->on_outcome != NULL)
    options->on_outcome (result, *detail, options->on_outcome_data);
  return result;
}
