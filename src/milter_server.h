/* milter_server.h - the filter side of the milter protocol: the listening
 * socket, one session per MTA connection, and the callbacks that see a mail.
 *
 * ticket-milter speaks the protocol itself instead of through libmilter.
 * Debian's libmilter hands every command of every session from a polling
 * thread to a worker thread (poll, condition variable, read of 4 bytes,
 * read of the rest): about 100 poll, 60 read and 27 futex calls for one
 * mail behind Postfix, and a worker started for every second mail because
 * end of message waits for the group commit. Here each session reads what
 * the MTA has sent in one read (Postfix sends the steps negotiated without
 * reply - envelope, headers, body - back to back) and answers end of
 * message in one write, modifications and verdict together.
 *
 * What the MTA sees is the protocol version 6 filter libmilter would be:
 * the same negotiation (actions, skipped steps, steps without reply, macro
 * lists), the same replies and modification packets. Steps the filter has
 * no callback for are answered "continue" (unless their reply was waived).
 *
 * Sockets, in libmilter's notation:
 *   unix:/path, local:/path or /path   a unix socket; a stale file is replaced
 *   inet:PORT@HOST, inet:PORT          IPv4 (HOST a name or an address, which
 *                                      may be in brackets; no HOST: every
 *                                      address)
 *   inet6:PORT@HOST, inet6:PORT        IPv6
 *
 * Threads: the thread calling tm_milter_server_run() accepts connections;
 * each session runs on a thread of a pool whose idle threads wait for the
 * next connection (up to 64 idle threads are kept for a minute), so a
 * connection costs no thread start while the load is steady. Callbacks of
 * one session run one at a time, in protocol order; different sessions'
 * run concurrently.
 *
 * Stopping: SIGTERM, SIGINT or SIGHUP (blocked in the calling thread by
 * tm_milter_server_run(), and so in every thread it starts) or
 * tm_milter_server_stop(). Listening stops at once; sessions waiting for
 * the MTA are closed (the MTA applies its default action to a mail in
 * progress), and a session inside a callback finishes it, sends its answer
 * and ends. tm_milter_server_run() returns when every session has ended.
 *
 * Limits: a packet's data up to max_packet bytes (TM_MILTER_DEFAULT_MAX_PACKET
 * unless set); a session idle for 7,210 s (libmilter's default) is closed.
 * Broken input from the MTA (a bad length, a malformed packet, an unknown
 * command) closes that session with a warning; other sessions go on.
 *
 * Usage:
 *   TmMilterServer *server = tm_milter_server_new ("unix:/run/x.sock", &error);
 *   tm_milter_server_run (server, &callbacks, &error);   blocks until stopped
 *   tm_milter_server_free (&server);                     closes the socket
 *                                                        (the file stays)
 */
#ifndef TM_MILTER_SERVER_H
#define TM_MILTER_SERVER_H

#include <glib.h>

#include "milter_wire.h"

typedef struct TmMilterServer TmMilterServer;   /* opaque */
typedef struct TmMilterSession TmMilterSession; /* opaque: one MTA connection */

/* The answer to end of message. */
typedef enum {
  TM_MILTER_CONTINUE,  /* the mail goes on, with the modifications requested */
  TM_MILTER_ACCEPT,    /* the same; and nothing more of this mail for this
                        * filter */
  TM_MILTER_TEMPFAIL,  /* 4xx: the text set by tm_milter_session_set_reply()
                        * if any, else the MTA's own */
} TmMilterVerdict;

/* What a filter sees. Every callback may be NULL. Strings and chunks are
 * valid only during the callback: copy what is kept. */
typedef struct {
  /* 'O', the first step of a connection (and again after a "quit, new
   * connection follows"): the MTA OFFERS actions and steps; set *ACTIONS and
   * *STEPS to those wanted (the server keeps only what was offered). Macro
   * lists may be requested here. Without this callback nothing is asked. */
  void (*negotiate) (TmMilterSession *session, guint32 offered_actions, guint32 offered_steps,
                     guint32 *actions, guint32 *steps);
  /* MAIL FROM: ARGUMENTS[0] the address (as given, with brackets), then its
   * ESMTP parameters; COUNT >= 1. */
  void (*mail) (TmMilterSession *session, const char *const *arguments, int count);
  /* RCPT TO, one call per recipient; the same shape as mail. */
  void (*recipient) (TmMilterSession *session, const char *const *arguments, int count);
  /* One header; VALUE as the MTA sent it (with its leading space when
   * TM_MILTER_HEADER_LEADING_SPACE was negotiated). */
  void (*header) (TmMilterSession *session, const char *name, const char *value);
  void (*end_of_headers) (TmMilterSession *session);
  void (*body) (TmMilterSession *session, const guint8 *chunk, gsize length);
  /* End of message: modifications may be requested now, and only now. */
  TmMilterVerdict (*end_of_message) (TmMilterSession *session);
  /* The MTA gave up this mail (RSET, a later step failed, a new MAIL). */
  void (*abort) (TmMilterSession *session);
  /* The connection ends (or restarts: "quit, new connection follows"): free
   * what hangs off tm_milter_session_set_data(). Called once for each
   * connection and each restart, however it ends. */
  void (*close) (TmMilterSession *session);
} TmMilterCallbacks;

#define TM_MILTER_SERVER_ERROR (tm_milter_server_error_quark ())
GQuark tm_milter_server_error_quark (void);

/* Opens and listens on SOCKET_SPEC (see above). NULL with ERROR set when the
 * notation is wrong or the socket cannot be made; a unix socket file that is
 * in the way is removed first (the caller checks that nobody listens on it). */
TmMilterServer *tm_milter_server_new (const char *socket_spec, GError **error)
  G_GNUC_WARN_UNUSED_RESULT;

/* The largest packet data accepted from the MTA; the default is
 * TM_MILTER_DEFAULT_MAX_PACKET. Call before tm_milter_server_run(). */
void tm_milter_server_set_max_packet (TmMilterServer *server, gsize max_data);

/* Serves connections with CALLBACKS (which must outlive the call) until a
 * stop signal or tm_milter_server_stop(); returns after every session has
 * ended. Once per server. FALSE with ERROR set when serving could not go on (accept failing
 * for a reason other than a passing shortage). */
gboolean tm_milter_server_run (TmMilterServer *server, const TmMilterCallbacks *callbacks,
                               GError **error);

/* Thread-safe: makes tm_milter_server_run() stop as a signal would. */
void tm_milter_server_stop (TmMilterServer *server);

/* Closes the listening socket and clears the caller's pointer. */
void tm_milter_server_free (TmMilterServer **server);

/* ---- inside callbacks ----------------------------------------------------- */

/* The filter's own pointer for this session; NULL until set. */
gpointer tm_milter_session_get_data (TmMilterSession *session);
void tm_milter_session_set_data (TmMilterSession *session, gpointer data);

/* The steps agreed in negotiation (TM_MILTER_SKIP_*, _NO_REPLY_*, ...). */
guint32 tm_milter_session_steps (TmMilterSession *session);

/* Only in negotiate, and only with TM_MILTER_ACTION_SET_MACRO_LIST among
 * the actions wanted: asks the MTA to send the macros NAMES (space-
 * separated, e.g. "i {auth_authen}") at STAGE. */
void tm_milter_session_request_macros (TmMilterSession *session, TmMilterStage stage,
                                       const char *names);

/* The value of macro NAME ("i" and "{i}" are the same macro) as last sent
 * for the current connection and mail, or NULL. Valid until the next
 * callback of this session. */
const char *tm_milter_session_macro (TmMilterSession *session, const char *name);

/* Modifications, only in end_of_message; FALSE (nothing sent) when the
 * action was not agreed in negotiation or when called elsewhere. VALUE is
 * sent as given (the caller folds it and adds a leading space if agreed). */
gboolean tm_milter_session_add_header (TmMilterSession *session, const char *name,
                                       const char *value);
/* The INDEXth (1-based) header NAME gets VALUE; NULL deletes it. */
gboolean tm_milter_session_change_header (TmMilterSession *session, const char *name,
                                          guint32 index, const char *value);
gboolean tm_milter_session_add_recipient (TmMilterSession *session, const char *address);
gboolean tm_milter_session_delete_recipient (TmMilterSession *session, const char *address);

/* The SMTP reply for a TM_MILTER_TEMPFAIL at end of message: RCODE (4xx),
 * XCODE (4.x.x) and TEXT (one line; CR and LF are replaced by spaces, and a
 * '%' is sent as "%%", which the MTA reads back as one '%'). */
void tm_milter_session_set_reply (TmMilterSession *session, const char *rcode,
                                  const char *xcode, const char *text);

#endif
