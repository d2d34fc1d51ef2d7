/* milter_server.c - the filter side of the milter protocol (see milter_server.h). */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "milter_server.h"

/* libmilter's default: a session that hears nothing for this long ends. */
#define IDLE_SESSION_SECONDS 7210
/* Idle pool threads kept, and for how long, waiting for new connections. */
#define KEPT_IDLE_THREADS 64
#define IDLE_THREAD_MS 60000
/* A session's input buffer: room for a full body chunk (64 KiB) and more,
 * so that one read takes whatever the MTA has sent; grown for a bigger
 * packet and given back once that packet is handled. */
#define INPUT_BUFFER_BYTES (128 * 1024)
/* ESMTP parameters after MAIL FROM or RCPT TO, and macros in one packet. */
#define MAX_ARGUMENTS 64
#define MAX_MACRO_STRINGS 512

G_DEFINE_QUARK (tm-milter-server-error-quark, tm_milter_server_error)

struct TmMilterServer {
  char *spec;                   /* the socket as the admin wrote it */
  int listen_fd;
  gsize max_packet;
  const TmMilterCallbacks *callbacks; /* set by run, read by the sessions */
  int stop_pipe[2];             /* tm_milter_server_stop() writes a byte */
  GMutex lock;                  /* guards the fields below */
  GCond session_ended;
  GList *sessions;              /* of TmMilterSession*: those running */
  gboolean stopping;
};

struct TmMilterSession {
  TmMilterServer *server;
  int fd;
  GList *link;                  /* in server->sessions */
  gboolean waiting;             /* under server->lock: blocked on the MTA */
  gpointer data;                /* the filter's */
  gboolean connection_open;     /* close not yet called for this negotiation */
  guint32 offered_actions;      /* in the current negotiation */
  guint32 actions;              /* agreed */
  guint32 steps;                /* agreed */
  gboolean in_negotiate;
  gboolean in_end_of_message;
  char *macro_lists[TM_MILTER_STAGES]; /* requested in negotiate, or NULL */
  GPtrArray *macros[TM_MILTER_STAGES]; /* of char*: name, value, ... (owned) */
  char *reply;                  /* "451 4.3.0 text" for a tempfail, or NULL */
  GByteArray *out;              /* replies not yet written */
  guint8 *in;
  gsize in_length;
  gsize in_capacity;
};

/* ---- the socket ----------------------------------------------------------- */

static int
listen_unix (const char *spec, const char *path, GError **error)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  if (*path == '\0' || strlen (path) >= sizeof address.sun_path)
    {
      g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "%s: the socket path is empty or longer "
                   "than %zu bytes", spec, sizeof address.sun_path - 1);
      return -1;
    }
  strcpy (address.sun_path, path);
  struct stat status;
  if (lstat (path, &status) == 0)
    {
      if (!S_ISSOCK (status.st_mode))
        {
          g_set_error (error, TM_MILTER_SERVER_ERROR, 0,
                       "%s: %s exists and is not a socket: not replacing it", spec, path);
          return -1;
        }
      if (unlink (path) != 0)
        {
          g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "%s: cannot remove the old socket: %s",
                       spec, g_strerror (errno));
          return -1;
        }
    }
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind (fd, (struct sockaddr *) &address, sizeof address) != 0
      || listen (fd, SOMAXCONN) != 0)
    {
      g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "cannot listen on %s: %s", spec,
                   g_strerror (errno));
      if (fd >= 0)
        close (fd);
      return -1;
    }
  return fd;
}

/* "inet:PORT@HOST" or "inet:PORT" (FAMILY AF_INET), "inet6:..." (AF_INET6). */
static int
listen_inet (const char *spec, const char *rest, int family, GError **error)
{
  g_autofree char *port = g_strdup (rest);
  char *at = strchr (port, '@');
  const char *host = NULL;
  if (at != NULL)
    {
      *at = '\0';
      host = at + 1;
    }
  /* libmilter also takes the address in brackets: inet:8891@[127.0.0.1]. */
  g_autofree char *unbracketed = NULL;
  if (host != NULL && host[0] == '[' && strlen (host) > 2 && host[strlen (host) - 1] == ']')
    host = unbracketed = g_strndup (host + 1, strlen (host) - 2);
  if (*port == '\0' || (host != NULL && *host == '\0'))
    {
      g_set_error (error, TM_MILTER_SERVER_ERROR, 0,
                   "%s: expected inet:PORT@HOST or inet:PORT (inet6: likewise)", spec);
      return -1;
    }
  struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_PASSIVE };
  struct addrinfo *found = NULL;
  int status = getaddrinfo (host, port, &hints, &found);
  if (status != 0)
    {
      g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "%s: %s", spec, gai_strerror (status));
      return -1;
    }
  int fd = socket (found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  if (fd < 0 || setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0
      || bind (fd, found->ai_addr, found->ai_addrlen) != 0 || listen (fd, SOMAXCONN) != 0)
    {
      g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "cannot listen on %s: %s", spec,
                   g_strerror (errno));
      if (fd >= 0)
        close (fd);
      fd = -1;
    }
  freeaddrinfo (found);
  return fd;
}

TmMilterServer *
tm_milter_server_new (const char *socket_spec, GError **error)
{
  g_return_val_if_fail (socket_spec != NULL, NULL);
  int fd;
  if (g_str_has_prefix (socket_spec, "unix:"))
    fd = listen_unix (socket_spec, socket_spec + strlen ("unix:"), error);
  else if (g_str_has_prefix (socket_spec, "local:"))
    fd = listen_unix (socket_spec, socket_spec + strlen ("local:"), error);
  else if (socket_spec[0] == '/')
    fd = listen_unix (socket_spec, socket_spec, error);
  else if (g_str_has_prefix (socket_spec, "inet:"))
    fd = listen_inet (socket_spec, socket_spec + strlen ("inet:"), AF_INET, error);
  else if (g_str_has_prefix (socket_spec, "inet6:"))
    fd = listen_inet (socket_spec, socket_spec + strlen ("inet6:"), AF_INET6, error);
  else
    {
      g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "%s: unknown socket notation (expected "
                   "unix:/path, local:/path, inet:PORT@HOST or inet6:PORT@HOST)", socket_spec);
      return NULL;
    }
  if (fd < 0)
    return NULL;

  TmMilterServer *server = g_new0 (TmMilterServer, 1);
  server->spec = g_strdup (socket_spec);
  server->listen_fd = fd;
  server->max_packet = TM_MILTER_DEFAULT_MAX_PACKET;
  server->stop_pipe[0] = server->stop_pipe[1] = -1;
  if (pipe2 (server->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    {
      g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "pipe: %s", g_strerror (errno));
      tm_milter_server_free (&server);
      return NULL;
    }
  g_mutex_init (&server->lock);
  g_cond_init (&server->session_ended);
  return server;
}

void
tm_milter_server_set_max_packet (TmMilterServer *server, gsize max_data)
{
  g_return_if_fail (server != NULL && max_data > 0);
  server->max_packet = max_data;
}

void
tm_milter_server_free (TmMilterServer **server_ptr)
{
  if (server_ptr == NULL || *server_ptr == NULL)
    return;
  TmMilterServer *server = *server_ptr;
  *server_ptr = NULL;
  g_return_if_fail (server->sessions == NULL);
  if (server->listen_fd >= 0)
    close (server->listen_fd);
  for (int i = 0; i < 2; i++)
    if (server->stop_pipe[i] >= 0)
      close (server->stop_pipe[i]);
  g_mutex_clear (&server->lock);
  g_cond_clear (&server->session_ended);
  g_free (server->spec);
  g_free (server);
}

void
tm_milter_server_stop (TmMilterServer *server)
{
  g_return_if_fail (server != NULL);
  char byte = 's';
  if (write (server->stop_pipe[1], &byte, 1) < 0)
    {
      /* The pipe is full: a stop is already on its way. */
    }
}

/* ---- a session: what the filter may call ------------------------------------ */

gpointer
tm_milter_session_get_data (TmMilterSession *session)
{
  return session->data;
}

void
tm_milter_session_set_data (TmMilterSession *session, gpointer data)
{
  session->data = data;
}

guint32
tm_milter_session_steps (TmMilterSession *session)
{
  return session->steps;
}

void
tm_milter_session_request_macros (TmMilterSession *session, TmMilterStage stage,
                                  const char *names)
{
  g_return_if_fail (session->in_negotiate && (guint) stage < TM_MILTER_STAGES && names != NULL);
  g_free (session->macro_lists[stage]);
  session->macro_lists[stage] = g_strdup (names);
}

/* "{name}" and "name" are one macro: compared without the braces. */
static gboolean
macro_name_is (const char *stored, const char *wanted)
{
  gsize length = strlen (wanted);
  if (length >= 2 && wanted[0] == '{' && wanted[length - 1] == '}')
    return strlen (stored) == length - 2 && strncmp (stored, wanted + 1, length - 2) == 0;
  return strcmp (stored, wanted) == 0;
}

const char *
tm_milter_session_macro (TmMilterSession *session, const char *name)
{
  /* The latest stage first: a later value for the same name wins. */
  static const TmMilterStage newest_first[] = {
    TM_MILTER_STAGE_EOM, TM_MILTER_STAGE_EOH, TM_MILTER_STAGE_DATA, TM_MILTER_STAGE_RCPT,
    TM_MILTER_STAGE_MAIL, TM_MILTER_STAGE_HELO, TM_MILTER_STAGE_CONNECT,
  };
  for (gsize i = 0; i < G_N_ELEMENTS (newest_first); i++)
    {
      GPtrArray *macros = session->macros[newest_first[i]];
      for (guint j = 0; macros != NULL && j + 1 < macros->len; j += 2)
        if (macro_name_is (g_ptr_array_index (macros, j), name))
          return g_ptr_array_index (macros, j + 1);
    }
  return NULL;
}

static gboolean
may_modify (TmMilterSession *session, guint32 action)
{
  return session->in_end_of_message && (session->actions & action) != 0;
}

gboolean
tm_milter_session_add_header (TmMilterSession *session, const char *name, const char *value)
{
  if (!may_modify (session, TM_MILTER_ACTION_ADD_HEADERS))
    return FALSE;
  const char *strings[] = { name, value, NULL };
  tm_milter_wire_append_strings (session->out, 'h', strings);
  return TRUE;
}

gboolean
tm_milter_session_change_header (TmMilterSession *session, const char *name, guint32 index,
                                 const char *value)
{
  if (!may_modify (session, TM_MILTER_ACTION_CHANGE_HEADERS))
    return FALSE;
  tm_milter_wire_append_change_header (session->out, index, name, value != NULL ? value : "");
  return TRUE;
}

gboolean
tm_milter_session_add_recipient (TmMilterSession *session, const char *address)
{
  if (!may_modify (session, TM_MILTER_ACTION_ADD_RECIPIENTS))
    return FALSE;
  const char *strings[] = { address, NULL };
  tm_milter_wire_append_strings (session->out, '+', strings);
  return TRUE;
}

gboolean
tm_milter_session_delete_recipient (TmMilterSession *session, const char *address)
{
  if (!may_modify (session, TM_MILTER_ACTION_DELETE_RECIPIENTS))
    return FALSE;
  const char *strings[] = { address, NULL };
  tm_milter_wire_append_strings (session->out, '-', strings);
  return TRUE;
}

void
tm_milter_session_set_reply (TmMilterSession *session, const char *rcode, const char *xcode,
                             const char *text)
{
  /* The MTA reads the text as a format: a '%' of the text is sent as "%%". */
  GString *reply = g_string_new (NULL);
  g_string_printf (reply, "%s %s ", rcode, xcode);
  for (const char *c = text; *c != '\0'; c++)
    {
      if (*c == '\r' || *c == '\n')
        g_string_append_c (reply, ' ');
      else if (*c == '%')
        g_string_append (reply, "%%");
      else
        g_string_append_c (reply, *c);
    }
  g_free (session->reply);
  session->reply = g_string_free (reply, FALSE);
}

/* ---- a session: the protocol ------------------------------------------------- */

static void
clear_macros (TmMilterSession *session, TmMilterStage from)
{
  for (int stage = from; stage < TM_MILTER_STAGES; stage++)
    if (session->macros[stage] != NULL)
      {
        g_ptr_array_unref (session->macros[stage]);
        session->macros[stage] = NULL;
      }
}

/* The mail's own macros (MAIL FROM onwards) end with the mail. */
static void
end_mail (TmMilterSession *session)
{
  clear_macros (session, TM_MILTER_STAGE_MAIL);
  g_clear_pointer (&session->reply, g_free);
}

/* A step the filter agreed to answer gets "continue". */
static void
continue_unless (TmMilterSession *session, guint32 no_reply_step)
{
  if ((session->steps & no_reply_step) == 0)
    tm_milter_wire_append (session->out, 'c', NULL, 0);
}

static void
warn_broken (TmMilterSession *session, const char *problem, char command)
{
  tm_log (LOG_WARNING, "milter protocol: %s (command '%c', 0x%02x) from the MTA on %s: "
          "closing that connection", problem, g_ascii_isprint (command) ? command : '?',
          (unsigned char) command, session->server->spec);
}

static gboolean
negotiate (TmMilterSession *session, const TmMilterPacket *packet)
{
  const TmMilterCallbacks *callbacks = session->server->callbacks;
  guint32 version, offered_actions, offered_steps;
  if (!tm_milter_wire_negotiation (packet->data, packet->length, &version, &offered_actions,
                                   &offered_steps))
    {
      warn_broken (session, "a negotiation shorter than 12 bytes", packet->command);
      return FALSE;
    }
  if (version < 2)
    {
      warn_broken (session, "protocol version below 2", packet->command);
      return FALSE;
    }
  for (int stage = 0; stage < TM_MILTER_STAGES; stage++)
    g_clear_pointer (&session->macro_lists[stage], g_free);
  session->connection_open = TRUE;
  guint32 actions = 0, steps = 0;
  session->offered_actions = offered_actions;
  session->in_negotiate = TRUE;
  if (callbacks->negotiate != NULL)
    callbacks->negotiate (session, offered_actions, offered_steps, &actions, &steps);
  session->in_negotiate = FALSE;
  session->actions = actions & offered_actions;
  session->steps = steps & offered_steps;
  gboolean send_lists = (session->actions & TM_MILTER_ACTION_SET_MACRO_LIST) != 0;
  tm_milter_wire_append_negotiation (session->out, MIN (version, TM_MILTER_PROTOCOL_VERSION),
                                     session->actions, session->steps,
                                     send_lists ? (const char *const *) session->macro_lists
                                                : NULL);
  return TRUE;
}

static TmMilterStage
stage_of_command (char command, gboolean *known)
{
  *known = TRUE;
  switch (command)
    {
    case 'C': return TM_MILTER_STAGE_CONNECT;
    case 'H': return TM_MILTER_STAGE_HELO;
    case 'M': return TM_MILTER_STAGE_MAIL;
    case 'R': return TM_MILTER_STAGE_RCPT;
    case 'T': return TM_MILTER_STAGE_DATA;
    case 'E': return TM_MILTER_STAGE_EOM;
    case 'N': return TM_MILTER_STAGE_EOH;
    default:
      *known = FALSE;
      return TM_MILTER_STAGE_CONNECT;
    }
}

static gboolean
store_macros (TmMilterSession *session, const TmMilterPacket *packet)
{
  if (packet->length < 1)
    {
      warn_broken (session, "macros for no step", packet->command);
      return FALSE;
    }
  gboolean known;
  TmMilterStage stage = stage_of_command ((char) packet->data[0], &known);
  if (!known)
    return TRUE;   /* macros for a step we do not know: not ours to keep */
  const char *strings[MAX_MACRO_STRINGS];
  int count = tm_milter_wire_strings (packet->data + 1, packet->length - 1, strings,
                                      MAX_MACRO_STRINGS);
  if (count < 0)
    {
      warn_broken (session, "malformed or too many macros", packet->command);
      return FALSE;
    }
  GPtrArray *macros = g_ptr_array_new_full ((guint) count, g_free);
  for (int i = 0; i + 1 < count; i += 2)
    {
      const char *name = strings[i];
      gsize length = strlen (name);
      if (length >= 2 && name[0] == '{' && name[length - 1] == '}')
        g_ptr_array_add (macros, g_strndup (name + 1, length - 2));
      else
        g_ptr_array_add (macros, g_strdup (name));
      g_ptr_array_add (macros, g_strdup (strings[i + 1]));
    }
  if (session->macros[stage] != NULL)
    g_ptr_array_unref (session->macros[stage]);
  session->macros[stage] = macros;
  return TRUE;
}

static gboolean
envelope (TmMilterSession *session, const TmMilterPacket *packet,
          void (*callback) (TmMilterSession *, const char *const *, int), guint32 no_reply)
{
  const char *arguments[MAX_ARGUMENTS];
  int count = tm_milter_wire_strings (packet->data, packet->length, arguments, MAX_ARGUMENTS);
  if (count < 1)
    {
      warn_broken (session, "an envelope address that is missing, unterminated or followed "
                   "by too many parameters", packet->command);
      return FALSE;
    }
  if (callback != NULL)
    callback (session, arguments, count);
  continue_unless (session, no_reply);
  return TRUE;
}

static void
end_of_message (TmMilterSession *session, const TmMilterPacket *packet)
{
  const TmMilterCallbacks *callbacks = session->server->callbacks;
  /* The last body bytes may come with end of message itself. */
  if (packet->length > 0 && callbacks->body != NULL)
    callbacks->body (session, packet->data, packet->length);
  TmMilterVerdict verdict = TM_MILTER_CONTINUE;
  session->in_end_of_message = TRUE;
  if (callbacks->end_of_message != NULL)
    verdict = callbacks->end_of_message (session);
  session->in_end_of_message = FALSE;
  switch (verdict)
    {
    case TM_MILTER_ACCEPT:
      tm_milter_wire_append (session->out, 'a', NULL, 0);
      break;
    case TM_MILTER_TEMPFAIL:
      if (session->reply != NULL)
        tm_milter_wire_append (session->out, 'y', session->reply, strlen (session->reply) + 1);
      else
        tm_milter_wire_append (session->out, 't', NULL, 0);
      break;
    case TM_MILTER_CONTINUE:
    default:
      tm_milter_wire_append (session->out, 'c', NULL, 0);
      break;
    }
  end_mail (session);
}

/* The connection is over, or starts again ("quit, new connection follows"):
 * the filter lets go of its data and the session forgets the negotiation. */
static void
end_connection (TmMilterSession *session)
{
  const TmMilterCallbacks *callbacks = session->server->callbacks;
  if (session->connection_open && callbacks->close != NULL)
    callbacks->close (session);
  session->connection_open = FALSE;
  session->data = NULL;
  session->actions = session->steps = 0;
  clear_macros (session, TM_MILTER_STAGE_CONNECT);
  g_clear_pointer (&session->reply, g_free);
}

/* One command; FALSE when the session is to end. */
static gboolean
handle_packet (TmMilterSession *session, const TmMilterPacket *packet)
{
  const TmMilterCallbacks *callbacks = session->server->callbacks;
  switch (packet->command)
    {
    case 'O':
      return negotiate (session, packet);
    case 'D':
      return store_macros (session, packet);
    case 'C':
      continue_unless (session, TM_MILTER_NO_REPLY_CONNECT);
      return TRUE;
    case 'H':
      continue_unless (session, TM_MILTER_NO_REPLY_HELO);
      return TRUE;
    case 'M':
      return envelope (session, packet, callbacks->mail, TM_MILTER_NO_REPLY_MAIL);
    case 'R':
      return envelope (session, packet, callbacks->recipient, TM_MILTER_NO_REPLY_RCPT);
    case 'T':
      continue_unless (session, TM_MILTER_NO_REPLY_DATA);
      return TRUE;
    case 'L':
      {
        const char *strings[2];
        if (tm_milter_wire_strings (packet->data, packet->length, strings, 2) != 2)
          {
            warn_broken (session, "a header that is not a name and a value", packet->command);
            return FALSE;
          }
        if (callbacks->header != NULL)
          callbacks->header (session, strings[0], strings[1]);
        continue_unless (session, TM_MILTER_NO_REPLY_HEADER);
        return TRUE;
      }
    case 'N':
      if (callbacks->end_of_headers != NULL)
        callbacks->end_of_headers (session);
      continue_unless (session, TM_MILTER_NO_REPLY_EOH);
      return TRUE;
    case 'B':
      if (callbacks->body != NULL)
        callbacks->body (session, packet->data, packet->length);
      continue_unless (session, TM_MILTER_NO_REPLY_BODY);
      return TRUE;
    case 'E':
      end_of_message (session, packet);
      return TRUE;
    case 'A':
      if (callbacks->abort != NULL)
        callbacks->abort (session);
      end_mail (session);
      return TRUE;   /* no reply: the MTA does not wait for one */
    case 'U':
      continue_unless (session, TM_MILTER_NO_REPLY_UNKNOWN);
      return TRUE;
    case 'Q':
      return FALSE;
    case 'K':
      end_connection (session);
      return TRUE;
    default:
      warn_broken (session, "an unknown command", packet->command);
      return FALSE;
    }
}

/* Writes the replies gathered; FALSE when the MTA is gone. */
static gboolean
flush_replies (TmMilterSession *session)
{
  gsize written = 0;
  while (written < session->out->len)
    {
      ssize_t sent = send (session->fd, session->out->data + written,
                           session->out->len - written, MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR)
        continue;
      if (sent <= 0)
        {
          g_byte_array_set_size (session->out, 0);
          return FALSE;
        }
      written += (gsize) sent;
    }
  g_byte_array_set_size (session->out, 0);
  return TRUE;
}

/* Room in the input buffer for the packet that starts it (whose length is
 * known once 4 bytes are in), or for a full read. */
static void
make_room (TmMilterSession *session)
{
  gsize wanted = INPUT_BUFFER_BYTES;
  if (session->in_length >= 4)
    {
      const guint8 *p = session->in;
      gsize packet = 4 + (((gsize) p[0] << 24) | ((gsize) p[1] << 16) | ((gsize) p[2] << 8) | p[3]);
      wanted = MAX (wanted, packet);
    }
  if (wanted > session->in_capacity
      || (session->in_capacity > INPUT_BUFFER_BYTES && wanted == INPUT_BUFFER_BYTES))
    {
      session->in = g_realloc (session->in, wanted);
      session->in_capacity = wanted;
    }
}

/* Marks the session as waiting for the MTA; FALSE when the server stops. */
static gboolean
start_waiting (TmMilterSession *session)
{
  TmMilterServer *server = session->server;
  g_mutex_lock (&server->lock);
  gboolean go_on = !server->stopping;
  session->waiting = go_on;
  g_mutex_unlock (&server->lock);
  return go_on;
}

static void
stop_waiting (TmMilterSession *session)
{
  g_mutex_lock (&session->server->lock);
  session->waiting = FALSE;
  g_mutex_unlock (&session->server->lock);
}

static void
session_free (TmMilterSession *session)
{
  for (int stage = 0; stage < TM_MILTER_STAGES; stage++)
    g_free (session->macro_lists[stage]);
  clear_macros (session, TM_MILTER_STAGE_CONNECT);
  g_free (session->reply);
  g_byte_array_unref (session->out);
  g_free (session->in);
  close (session->fd);
  g_free (session);
}

/* A pool thread serves one connection from start to end. */
static void
serve_session (gpointer data, gpointer unused)
{
  (void) unused;
  TmMilterSession *session = data;
  TmMilterServer *server = session->server;
  gboolean going = TRUE;
  while (going)
    {
      gsize offset = 0;
      while (going)
        {
          TmMilterPacket packet;
          g_autoptr (GError) error = NULL;
          gssize used = tm_milter_wire_next_packet (session->in + offset,
                                                    session->in_length - offset,
                                                    server->max_packet, &packet, &error);
          if (used == 0)
            break;
          if (used < 0)
            {
              tm_log (LOG_WARNING, "milter protocol: %s on %s: closing that connection",
                      error->message, server->spec);
              going = FALSE;
              break;
            }
          offset += (gsize) used;
          going = handle_packet (session, &packet);
        }
      memmove (session->in, session->in + offset, session->in_length - offset);
      session->in_length -= offset;
      if (!flush_replies (session) || !going || !start_waiting (session))
        break;
      make_room (session);
      ssize_t got;
      do
        got = read (session->fd, session->in + session->in_length,
                    session->in_capacity - session->in_length);
      while (got < 0 && errno == EINTR);
      stop_waiting (session);
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        tm_log (LOG_INFO, "milter protocol: nothing from the MTA for %d s on %s: closing that "
                "connection", IDLE_SESSION_SECONDS, server->spec);
      if (got <= 0)
        break;
      session->in_length += (gsize) got;
    }
  end_connection (session);

  g_mutex_lock (&server->lock);
  server->sessions = g_list_delete_link (server->sessions, session->link);
  g_cond_broadcast (&server->session_ended);
  g_mutex_unlock (&server->lock);
  session_free (session);
}

/* ---- serving ------------------------------------------------------------------ */

/* FALSE when no thread could be started for the session, which then waits
 * in the pool's queue (GLib keeps it) until start_waiting_sessions() gets
 * it one. */
static gboolean
start_session (TmMilterServer *server, GThreadPool *pool, int fd)
{
  struct timeval idle = { .tv_sec = IDLE_SESSION_SECONDS };
  (void) setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
  (void) setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &idle, sizeof idle);
  TmMilterSession *session = g_new0 (TmMilterSession, 1);
  session->server = server;
  session->fd = fd;
  session->out = g_byte_array_sized_new (256);
  session->connection_open = TRUE;
  session->in_capacity = INPUT_BUFFER_BYTES;
  session->in = g_malloc (session->in_capacity);
  g_mutex_lock (&server->lock);
  server->sessions = g_list_prepend (server->sessions, session);
  session->link = server->sessions;
  g_mutex_unlock (&server->lock);
  g_autoptr (GError) error = NULL;
  if (g_thread_pool_push (pool, session, &error))
    return TRUE;
  tm_log (LOG_ERR, "milter protocol: cannot start a session thread (trying again): %s",
          error->message);
  return FALSE;
}

/* After start_session() failed: tries to start threads for the sessions
 * queued without one. TRUE while some are still queued. (Only then: a
 * session queued a moment before an idle thread takes it must not start
 * a thread of its own.) */
static gboolean
start_waiting_sessions (GThreadPool *pool)
{
  if (g_thread_pool_unprocessed (pool) == 0)
    return FALSE;
  (void) g_thread_pool_set_max_threads (pool, -1, NULL);
  return g_thread_pool_unprocessed (pool) > 0;
}

/* Stops listening, closes the sessions that wait for the MTA, and waits
 * until the others have finished their step. */
static void
end_sessions (TmMilterServer *server, GThreadPool *pool, gboolean starved)
{
  g_mutex_lock (&server->lock);
  server->stopping = TRUE;
  for (GList *link = server->sessions; link != NULL; link = link->next)
    {
      TmMilterSession *session = link->data;
      if (session->waiting)
        shutdown (session->fd, SHUT_RDWR);
    }
  /* A session still queued for a thread ends as soon as it gets one. */
  while (server->sessions != NULL)
    {
      gint64 retry = g_get_monotonic_time () + 100 * G_TIME_SPAN_MILLISECOND;
      if (!g_cond_wait_until (&server->session_ended, &server->lock, retry) && starved)
        {
          g_mutex_unlock (&server->lock);
          starved = start_waiting_sessions (pool);
          g_mutex_lock (&server->lock);
        }
    }
  g_mutex_unlock (&server->lock);
}

gboolean
tm_milter_server_run (TmMilterServer *server, const TmMilterCallbacks *callbacks,
                      GError **error)
{
  g_return_val_if_fail (server != NULL && callbacks != NULL, FALSE);
  server->callbacks = callbacks;

  /* Blocked here, before the session threads exist, so that they inherit
   * the mask and the signals reach only the signalfd below. */
  sigset_t stop_signals;
  sigemptyset (&stop_signals);
  sigaddset (&stop_signals, SIGTERM);
  sigaddset (&stop_signals, SIGINT);
  sigaddset (&stop_signals, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &stop_signals, NULL);
  int signal_fd = signalfd (-1, &stop_signals, SFD_CLOEXEC);
  if (signal_fd < 0)
    {
      g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "signalfd: %s", g_strerror (errno));
      return FALSE;
    }

  GThreadPool *pool = g_thread_pool_new (serve_session, NULL, -1, FALSE, error);
  if (pool == NULL)
    {
      close (signal_fd);
      return FALSE;
    }
  g_thread_pool_set_max_unused_threads (KEPT_IDLE_THREADS);
  g_thread_pool_set_max_idle_time (IDLE_THREAD_MS);

  gboolean ok = TRUE;
  gboolean starved = FALSE;   /* sessions wait in the queue without a thread */
  for (;;)
    {
      struct pollfd watched[3] = {
        { .fd = server->listen_fd, .events = POLLIN },
        { .fd = signal_fd, .events = POLLIN },
        { .fd = server->stop_pipe[0], .events = POLLIN },
      };
      /* With sessions queued for a thread, try again every 100 ms. */
      if (starved)
        starved = start_waiting_sessions (pool);
      int timeout = starved ? 100 : -1;
      if (poll (watched, 3, timeout) < 0)
        {
          if (errno == EINTR)
            continue;
          g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "poll: %s", g_strerror (errno));
          ok = FALSE;
          break;
        }
      if (watched[1].revents != 0)
        {
          struct signalfd_siginfo signal_info;
          if (read (signal_fd, &signal_info, sizeof signal_info) == sizeof signal_info)
            tm_log (LOG_INFO, "stopping on signal %s", strsignal ((int) signal_info.ssi_signo));
          break;
        }
      if (watched[2].revents != 0)
        break;
      if (watched[0].revents == 0)
        continue;
      int fd = accept4 (server->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd >= 0)
        {
          if (!start_session (server, pool, fd))
            starved = TRUE;
          continue;
        }
      switch (errno)
        {
        case EINTR: case EAGAIN: case ECONNABORTED: case EPROTO:
          break;
        case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM:
          {
            /* A passing shortage: wait a little rather than spin. */
            tm_log (LOG_WARNING, "milter protocol: cannot accept a connection on %s: %s",
                    server->spec, g_strerror (errno));
            struct timespec pause = { .tv_nsec = 100 * 1000 * 1000 };
            nanosleep (&pause, NULL);
            break;
          }
        default:
          g_set_error (error, TM_MILTER_SERVER_ERROR, 0, "accept on %s: %s", server->spec,
                       g_strerror (errno));
          ok = FALSE;
          break;
        }
      if (!ok)
        break;
    }

  end_sessions (server, pool, starved);
  g_thread_pool_free (pool, FALSE, TRUE);
  close (signal_fd);
  return ok;
}
