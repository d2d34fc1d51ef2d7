/* milter-load.c - a load generator that speaks the MTA side of the milter protocol.
 *
 * Drives a milter (ticket-milter, bench/null-milter, any libmilter filter) the
 * way Postfix 3.7's smtpd and cleanup do, without Postfix: so that the
 * milter's own throughput, end-of-message latency and memory can be measured
 * with nothing else on the machine's CPUs but the milter and this program.
 *
 *   milter-load -s SOCKET [-c SESSIONS] [-n MAILS] [-m PER_CONNECTION]
 *               [--rcpts N] [--rcpt ADDR] [--size BYTES | --file EML]
 *               [--hold N [--hold-at mail|body] [--hold-seconds S]]
 *               [--rate R] [--pid PID] [--json] [--timeout S] [...]
 *
 * What it sends, per connection (as Postfix 3.7 with milter_protocol = 6):
 *   SMFIC_OPTNEG offering version 6, every action (SMFIF_ADDHDRS ...
 *   SMFIF_SETSYMLIST) and every step flag Postfix offers (SMFIP_NO*, SMFIP_NR_*,
 *   SMFIP_SKIP, SMFIP_RCPT_REJ, SMFIP_HDR_LEADSPC); then CONNECT and HELO, and
 *   per mail MAIL, RCPT (--rcpts of them), DATA, one HEADER per header, EOH,
 *   BODY chunks of at most 65535 bytes, BODYEOB; SMFIC_ABORT after every mail
 *   (Postfix's smtpd resets the milter after each transaction); SMFIC_QUIT at
 *   the end. Each event is preceded by an SMFIC_MACRO packet with Postfix's
 *   default macros for that stage (or the list the milter asked for with
 *   SMFIF_SETSYMLIST), even for an event the milter asked to skip, as Postfix
 *   does. Steps the milter skipped (SMFIP_NO*) are not sent; replies the milter
 *   waived (SMFIP_NR_*) are not waited for, so those packets are written
 *   together with the next one that needs a reply. The queue id macro {i}
 *   exists from the first RCPT on, as with Postfix's default
 *   smtpd_delay_open_until_valid_rcpt = yes (--queue-id-at-mail: from MAIL on).
 *
 * The mail: by default a generated customer mail of about --size bytes (4096),
 * Arabic and English, UTF-8, with a Message-ID, an envelope sender and a From:
 * address of its own, so that every mail is a new ticket and gets an
 * acknowledgement (no per-sender limit applies). --file sends a given message
 * instead; its Message-ID is replaced by a unique one (added when missing, as
 * Postfix's cleanup does) unless --keep-message-id.
 *
 * What it prints: mails per second (wall clock, from the first mail to the last
 * reply), the end-of-message latency (from writing BODYEOB to the final reply)
 * p50, p90, p99 and maximum, the final replies counted (accept, continue,
 * discard, reject, tempfail, shutdown), errors, and the modifications the
 * milter asked for. With --pid, the milter's VmRSS and VmHWM (from
 * /proc/PID/status) before the run, with the --hold sessions open, at the peak
 * sampled every 10 ms, and after every session closed, plus its CPU time per
 * mail. --json prints one JSON object instead.
 *
 * Before anything is measured one connection negotiates and quits: an
 * unreachable milter is one clear message (exit 69), not one per thread.
 *
 * --hold N opens N more sessions before the measured load and keeps them open
 * and idle until it ends: after MAIL FROM (--hold-at mail, the default) or in
 * the middle of the body (--hold-at body: envelope, headers and half of the
 * body sent). With -n 0 they are held for --hold-seconds (default 1) and
 * nothing else is sent: the milter's memory with N sessions open.
 *
 * Exit status: 0 when every mail got a final reply (whatever it was); 1 when
 * some mails failed (connection lost, timeout, protocol error: each is
 * reported on stderr, the first 20 in full); 64 for a bad command line; 69
 * when the milter cannot be reached or refuses the negotiation.
 *
 * Limits: no TLS or AUTH macros unless --auth; no SMTP UNKNOWN commands; a
 * body replacement (SMFIR_REPLBODY) is counted, not applied; one recipient
 * rejected by the milter is dropped like Postfix does, the mail goes on with
 * the others.
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -std=c11 bench/milter-load.c -o bench/milter-load \
 *          $(pkg-config --cflags --libs glib-2.0) -lpthread
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <glib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 64        /* sysexits EX_USAGE */
#define EXIT_UNAVAILABLE 69  /* sysexits EX_UNAVAILABLE */

/* ---- the milter protocol, version 6 (as in Postfix's milter8.c) ---------- */

/* Our own definitions, so that the MTA side builds without libmilter. */
#define SMFIC_ABORT 'A'
#define SMFIC_BODY 'B'
#define SMFIC_CONNECT 'C'
#define SMFIC_MACRO 'D'
#define SMFIC_BODYEOB 'E'
#define SMFIC_HELO 'H'
#define SMFIC_HEADER 'L'
#define SMFIC_MAIL 'M'
#define SMFIC_EOH 'N'
#define SMFIC_OPTNEG 'O'
#define SMFIC_QUIT 'Q'
#define SMFIC_RCPT 'R'
#define SMFIC_DATA 'T'

#define SMFIR_ADDRCPT '+'
#define SMFIR_DELRCPT '-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_SHUTDOWN '4'
#define SMFIR_ACCEPT 'a'
#define SMFIR_REPLBODY 'b'
#define SMFIR_CONTINUE 'c'
#define SMFIR_DISCARD 'd'
#define SMFIR_CHGFROM 'e'
#define SMFIR_CONN_FAIL 'f'
#define SMFIR_ADDHEADER 'h'
#define SMFIR_INSHEADER 'i'
#define SMFIR_CHGHEADER 'm'
#define SMFIR_PROGRESS 'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT 'r'
#define SMFIR_SKIP 's'
#define SMFIR_TEMPFAIL 't'
#define SMFIR_REPLYCODE 'y'

#define SMFIF_ADDHDRS 0x001u
#define SMFIF_CHGBODY 0x002u
#define SMFIF_ADDRCPT 0x004u
#define SMFIF_DELRCPT 0x008u
#define SMFIF_CHGHDRS 0x010u
#define SMFIF_QUARANTINE 0x020u
#define SMFIF_CHGFROM 0x040u
#define SMFIF_ADDRCPT_PAR 0x080u
#define SMFIF_SETSYMLIST 0x100u
#define MTA_ACTIONS 0x1ffu   /* all of the above: what Postfix offers */

#define SMFIP_NOCONNECT 0x000001u
#define SMFIP_NOHELO 0x000002u
#define SMFIP_NOMAIL 0x000004u
#define SMFIP_NORCPT 0x000008u
#define SMFIP_NOBODY 0x000010u
#define SMFIP_NOHDRS 0x000020u
#define SMFIP_NOEOH 0x000040u
#define SMFIP_NR_HDR 0x000080u
#define SMFIP_NOUNKNOWN 0x000100u
#define SMFIP_NODATA 0x000200u
#define SMFIP_SKIP 0x000400u
#define SMFIP_RCPT_REJ 0x000800u
#define SMFIP_NR_CONN 0x001000u
#define SMFIP_NR_HELO 0x002000u
#define SMFIP_NR_MAIL 0x004000u
#define SMFIP_NR_RCPT 0x008000u
#define SMFIP_NR_DATA 0x010000u
#define SMFIP_NR_UNKN 0x020000u
#define SMFIP_NR_EOH 0x040000u
#define SMFIP_NR_BODY 0x080000u
#define SMFIP_HDR_LEADSPC 0x100000u
/* Postfix's MILTER8_V6_PROTO_MASK: every step flag of version 6. */
#define MTA_PROTOCOL 0x1fffffu

/* Macro stages (SMFIM_*), the index of a SETSYMLIST list. */
enum { STAGE_CONNECT, STAGE_HELO, STAGE_ENVFROM, STAGE_ENVRCPT, STAGE_DATA, STAGE_EOM,
       STAGE_EOH, STAGE_COUNT };

/* Postfix 3.7's default milter_*_macros, per stage. */
static const char *const postfix_macros[STAGE_COUNT] = {
  [STAGE_CONNECT] = "j {daemon_name} {daemon_addr} v _",
  [STAGE_HELO] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
  [STAGE_ENVFROM] = "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
  [STAGE_ENVRCPT] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
  [STAGE_DATA] = "i",
  [STAGE_EOM] = "i",
  [STAGE_EOH] = "i",
};

#define BODY_CHUNK 65535           /* Postfix's MILTER_CHUNK_SIZE */
#define MAX_PACKET (64u << 20)     /* a longer reply is a broken milter */
#define FLUSH_AT 65536             /* write buffered packets beyond this */
#define MAX_REPORTED_ERRORS 20

/* ---- options ------------------------------------------------------------- */

typedef struct {
  char *socket_spec;
  guint sessions;
  guint64 mails;
  guint per_connection;
  guint rcpt_count;
  char *first_rcpt;
  guint size;
  char *file;
  gboolean keep_message_id;
  guint hold;
  gboolean hold_in_body;
  double hold_seconds;
  double rate;               /* mails per second, 0: as fast as possible */
  long pid;                  /* the milter's process, 0: not watched */
  gboolean json;
  guint timeout;             /* seconds per read or write */
  gboolean send_abort;
  gboolean queue_id_at_mail;
  char *client_addr;
  char *auth_user;
  gboolean trace;
} Options;

static Options opt = {
  .sessions = 20,
  .mails = 1000,
  .per_connection = 10,
  .rcpt_count = 1,
  .size = 4096,
  .hold_seconds = 1.0,
  .timeout = 60,
  .send_abort = TRUE,
};

/* ---- the mail ------------------------------------------------------------ */

typedef struct {
  char *name;
  char *value;   /* what followed the colon, folded lines joined by "\n" */
} Header;

typedef struct {
  GPtrArray *headers;   /* Header* */
  GByteArray *body;     /* lines ending in CRLF, as Postfix sends them */
  int message_id;       /* index of the Message-ID header to replace, or -1 */
  int from;             /* index of the From header to replace, or -1 */
  gsize bytes;          /* size of one mail as sent, about */
} Template;

static Template mail_template;
static char *run_tag;          /* makes this run's ids unique across runs */

/* One mail in flight: what differs from one mail to the next. */
typedef struct {
  guint64 number;
  char queue_id[24];
  char *sender;               /* envelope sender, no brackets */
  char *from_value;           /* From: value, or NULL to keep the template's */
  char *message_id_value;     /* Message-ID: value, or NULL to keep it */
  guint rcpt;                 /* the recipient being sent */
  gboolean queue_id_known;    /* {i} exists at this point */
} Mail;

/* The envelope recipients: --rcpt first, then cc-2@example.test ... */
static char **recipients;

/* ---- results ------------------------------------------------------------- */

enum { OUT_ACCEPT, OUT_CONTINUE, OUT_DISCARD, OUT_REJECT, OUT_TEMPFAIL, OUT_SHUTDOWN,
       OUT_ERROR, OUT_COUNT };
static const char *const outcome_names[OUT_COUNT] = {
  "accept", "continue", "discard", "reject", "tempfail", "shutdown", "error",
};

enum { MOD_ADD_HEADER, MOD_INSERT_HEADER, MOD_CHANGE_HEADER, MOD_DELETE_HEADER,
       MOD_ADD_RCPT, MOD_DELETE_RCPT, MOD_REPLACE_BODY, MOD_CHANGE_FROM, MOD_QUARANTINE,
       MOD_COUNT };
static const char *const mod_names[MOD_COUNT] = {
  "add_header", "insert_header", "change_header", "delete_header", "add_rcpt",
  "delete_rcpt", "replace_body", "change_from", "quarantine",
};

/* What one thread counted; summed after the threads are joined. */
typedef struct {
  guint64 outcomes[OUT_COUNT];  /* final replies at end of message, and errors */
  guint64 early;                /* mails decided before end of message */
  guint64 early_outcomes[OUT_COUNT];
  guint64 mods[MOD_COUNT];
  guint64 warnings;             /* modifications the milter had not negotiated */
  guint64 sessions;
} Counts;

static gint64 *latency_ns;        /* per mail number; -1 when not measured */
static atomic_uint_fast64_t next_mail;
static atomic_bool stop_all;      /* the milter cannot be reached: stop */
static atomic_int fatal_exit;     /* exit status a stopping thread asks for */
static gint64 load_start_ns;

/* The first session's negotiation, for the report. */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static gboolean negotiated_known;
static guint32 negotiated_version, negotiated_actions, negotiated_protocol;
static char *negotiated_symlists[STAGE_COUNT];
static guint errors_reported;

static gint64
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void G_GNUC_PRINTF (1, 2)
report_error (const char *format, ...)
{
  va_list args;
  pthread_mutex_lock (&report_lock);
  if (errors_reported < MAX_REPORTED_ERRORS)
    {
      va_start (args, format);
      fputs ("milter-load: ", stderr);
      vfprintf (stderr, format, args);
      fputc ('\n', stderr);
      va_end (args);
    }
  else if (errors_reported == MAX_REPORTED_ERRORS)
    fputs ("milter-load: (further errors are counted, not shown)\n", stderr);
  errors_reported++;
  pthread_mutex_unlock (&report_lock);
}

/* ---- connecting ---------------------------------------------------------- */

/* Connects to a socket in libmilter notation: unix:/path, local:/path, a bare
 * /path, inet:PORT@HOST or inet6:PORT@HOST. -1 with *why set on failure. */
static int
connect_milter (const char *spec, char **why)
{
  const char *path = NULL;
  if (g_str_has_prefix (spec, "unix:"))
    path = spec + 5;
  else if (g_str_has_prefix (spec, "local:"))
    path = spec + 6;
  else if (spec[0] == '/')
    path = spec;

  if (path != NULL)
    {
      struct sockaddr_un address = { .sun_family = AF_UNIX };
      if (strlen (path) >= sizeof address.sun_path)
        {
          *why = g_strdup_printf ("socket path too long: %s", path);
          return -1;
        }
      strcpy (address.sun_path, path);
      int fd = socket (AF_UNIX, SOCK_STREAM, 0);
      if (fd < 0 || connect (fd, (struct sockaddr *) &address, sizeof address) != 0)
        {
          *why = g_strdup_printf ("cannot connect to %s: %s", spec, g_strerror (errno));
          if (fd >= 0)
            close (fd);
          return -1;
        }
      return fd;
    }

  int family;
  const char *rest;
  if (g_str_has_prefix (spec, "inet:"))
    family = AF_INET, rest = spec + 5;
  else if (g_str_has_prefix (spec, "inet6:"))
    family = AF_INET6, rest = spec + 6;
  else
    {
      *why = g_strdup_printf ("%s: not unix:/path, inet:port@host or inet6:port@host", spec);
      return -1;
    }
  const char *at = strchr (rest, '@');
  g_autofree char *port = g_strndup (rest, at != NULL ? (gsize) (at - rest) : strlen (rest));
  const char *host = at != NULL ? at + 1 : (family == AF_INET ? "127.0.0.1" : "::1");
  struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM };
  struct addrinfo *found = NULL;
  int status = getaddrinfo (host, port, &hints, &found);
  if (status != 0)
    {
      *why = g_strdup_printf ("%s: %s", spec, gai_strerror (status));
      return -1;
    }
  int fd = -1;
  int last_errno = 0;
  for (struct addrinfo *a = found; a != NULL && fd < 0; a = a->ai_next)
    {
      fd = socket (a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd >= 0 && connect (fd, a->ai_addr, a->ai_addrlen) != 0)
        {
          last_errno = errno;
          close (fd);
          fd = -1;
        }
    }
  freeaddrinfo (found);
  if (fd < 0)
    {
      *why = g_strdup_printf ("cannot connect to %s: %s", spec, g_strerror (last_errno));
      return -1;
    }
  /* Small packets that wait for a reply must not wait for Nagle. */
  int one = 1;
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* ---- one session: the MTA side of one milter connection ------------------ */

typedef struct {
  int fd;
  guint thread;                 /* for messages: the worker (0: not a worker) */
  guint serial;                 /* and its connection, counted from 1 */
  guint32 version;              /* as negotiated */
  guint32 actions;
  guint32 protocol;
  char *symlists[STAGE_COUNT];  /* macro names the milter asked for, or NULL */
  char **macro_names[STAGE_COUNT]; /* the names sent per stage, split once */
  GByteArray *out;              /* packets not written yet */
  GByteArray *packet;           /* scratch: the event payload being built */
  GByteArray *macros;           /* scratch: the SMFIC_MACRO payload */
  GByteArray *reply;            /* the payload of the last packet read */
  guint8 in[16384];
  gsize in_pos, in_len;
  char skip_event;              /* SMFIR_SKIP asked to skip this command, or 0 */
  char client_port[8];
  char *error;                  /* why the session broke, or NULL */
  Counts *counts;
} Session;

static void G_GNUC_PRINTF (2, 3)
session_fail (Session *s, const char *format, ...)
{
  if (s->error != NULL)
    return;   /* the first cause is the one worth telling */
  va_list args;
  va_start (args, format);
  s->error = g_strdup_vprintf (format, args);
  va_end (args);
}

static const char *
command_name (char command)
{
  switch (command)
    {
    case SMFIC_ABORT: return "ABORT";
    case SMFIC_BODY: return "BODY";
    case SMFIC_CONNECT: return "CONNECT";
    case SMFIC_MACRO: return "MACRO";
    case SMFIC_BODYEOB: return "BODYEOB";
    case SMFIC_HELO: return "HELO";
    case SMFIC_HEADER: return "HEADER";
    case SMFIC_MAIL: return "MAIL";
    case SMFIC_EOH: return "EOH";
    case SMFIC_OPTNEG: return "OPTNEG";
    case SMFIC_QUIT: return "QUIT";
    case SMFIC_RCPT: return "RCPT";
    case SMFIC_DATA: return "DATA";
    default: return "?";
    }
}

static void
trace_packet (const Session *s, const char *direction, char command, const guint8 *data,
              gsize length)
{
  GString *line = g_string_new (NULL);
  g_string_append_printf (line, "milter-load: [%u.%u] %s '%c' %zu", s->thread, s->serial,
                          direction, command, length);
  gsize shown = MIN (length, 72);
  g_string_append (line, " ");
  for (gsize i = 0; i < shown; i++)
    g_string_append_c (line, data[i] >= 0x20 && data[i] < 0x7f ? (char) data[i] : '.');
  if (shown < length)
    g_string_append (line, "...");
  fprintf (stderr, "%s\n", line->str);
  g_string_free (line, TRUE);
}

static gboolean
session_flush (Session *s)
{
  gsize done = 0;
  while (s->error == NULL && done < s->out->len)
    {
      ssize_t n = send (s->fd, s->out->data + done, s->out->len - done, MSG_NOSIGNAL);
      if (n > 0)
        done += (gsize) n;
      else if (n < 0 && errno == EINTR)
        continue;
      else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        session_fail (s, "the milter read nothing for %u s (write timed out)", opt.timeout);
      else
        session_fail (s, "cannot write to the milter: %s",
                      n < 0 ? g_strerror (errno) : "nothing written");
    }
  g_byte_array_set_size (s->out, 0);
  return s->error == NULL;
}

/* Queues one packet; written at the next flush (before any read, or when the
 * buffer is large), as Postfix's stream buffer does. */
static gboolean
put_packet (Session *s, char command, const guint8 *data, gsize length)
{
  if (s->error != NULL)
    return FALSE;
  guint32 wire_length = htonl ((guint32) length + 1);
  g_byte_array_append (s->out, (const guint8 *) &wire_length, 4);
  g_byte_array_append (s->out, (const guint8 *) &command, 1);
  if (length > 0)
    g_byte_array_append (s->out, data, (guint) length);
  if (opt.trace)
    trace_packet (s, "->", command, data, length);
  if (s->out->len >= FLUSH_AT)
    return session_flush (s);
  return TRUE;
}

static gboolean
read_exact (Session *s, guint8 *into, gsize wanted, const char *waiting_for)
{
  while (wanted > 0)
    {
      if (s->in_pos < s->in_len)
        {
          gsize n = MIN (wanted, s->in_len - s->in_pos);
          memcpy (into, s->in + s->in_pos, n);
          s->in_pos += n;
          into += n;
          wanted -= n;
          continue;
        }
      ssize_t n = recv (s->fd, s->in, sizeof s->in, 0);
      if (n > 0)
        {
          s->in_pos = 0;
          s->in_len = (gsize) n;
        }
      else if (n == 0)
        {
          session_fail (s, "the milter closed the connection while we waited for %s",
                        waiting_for);
          return FALSE;
        }
      else if (errno == EINTR)
        continue;
      else if (errno == EAGAIN || errno == EWOULDBLOCK)
        {
          session_fail (s, "no reply to %s within %u s", waiting_for, opt.timeout);
          return FALSE;
        }
      else
        {
          session_fail (s, "cannot read the reply to %s: %s", waiting_for, g_strerror (errno));
          return FALSE;
        }
    }
  return TRUE;
}

/* Reads one packet: its command into *command, its payload into s->reply. */
static gboolean
read_packet (Session *s, char *command, const char *waiting_for)
{
  if (!session_flush (s))
    return FALSE;
  guint32 wire_length;
  if (!read_exact (s, (guint8 *) &wire_length, 4, waiting_for))
    return FALSE;
  guint32 length = ntohl (wire_length);
  if (length < 1 || length > MAX_PACKET)
    {
      session_fail (s, "bad packet length %u in the reply to %s", length, waiting_for);
      return FALSE;
    }
  guint8 code;
  if (!read_exact (s, &code, 1, waiting_for))
    return FALSE;
  g_byte_array_set_size (s->reply, length - 1);
  if (!read_exact (s, s->reply->data, length - 1, waiting_for))
    return FALSE;
  *command = (char) code;
  if (opt.trace)
    trace_packet (s, "<-", *command, s->reply->data, s->reply->len);
  return TRUE;
}

static void
packet_string (GByteArray *packet, const char *text)
{
  g_byte_array_append (packet, (const guint8 *) text, (guint) strlen (text) + 1);
}

static void
packet_u32 (GByteArray *packet, guint32 value)
{
  guint32 wire = htonl (value);
  g_byte_array_append (packet, (const guint8 *) &wire, 4);
}

/* Splits a reply payload into its NUL-terminated strings; FALSE when it does
 * not end in NUL. *count is the number of strings. */
static gboolean
payload_strings (const guint8 *data, gsize length, const char **strings, guint max,
                 guint *count)
{
  *count = 0;
  if (length == 0)
    return TRUE;
  if (data[length - 1] != '\0')
    return FALSE;
  gsize at = 0;
  while (at < length)
    {
      if (*count == max)
        return FALSE;
      strings[(*count)++] = (const char *) data + at;
      at += strlen ((const char *) data + at) + 1;
    }
  return TRUE;
}

/* ---- macros -------------------------------------------------------------- */

/* The value Postfix would give macro NAME ("i", "{mail_addr}") at this point,
 * or NULL when Postfix has none (it then leaves the macro out). */
static const char *
macro_value (const Session *s, const Mail *mail, const char *name, char **scratch)
{
  g_autofree char *bare = NULL;
  gsize length = strlen (name);
  if (length > 2 && name[0] == '{' && name[length - 1] == '}')
    bare = g_strndup (name + 1, length - 2);
  else
    bare = g_strdup (name);

  if (strcmp (bare, "j") == 0 || strcmp (bare, "daemon_name") == 0)
    return "mx.example.test";
  if (strcmp (bare, "v") == 0)
    return "Postfix 3.7.11";
  if (strcmp (bare, "daemon_addr") == 0)
    return "192.0.2.1";
  if (strcmp (bare, "daemon_port") == 0)
    return "25";
  if (strcmp (bare, "_") == 0)
    return *scratch = g_strdup_printf ("client.example.net [%s]", opt.client_addr);
  if (strcmp (bare, "client_addr") == 0)
    return opt.client_addr;
  if (strcmp (bare, "client_name") == 0 || strcmp (bare, "client_ptr") == 0)
    return "client.example.net";
  if (strcmp (bare, "client_port") == 0)
    return s->client_port;
  if (strcmp (bare, "client_connections") == 0)
    return "1";
  if (opt.auth_user != NULL)
    {
      if (strcmp (bare, "auth_type") == 0)
        return "PLAIN";
      if (strcmp (bare, "auth_authen") == 0)
        return opt.auth_user;
    }
  if (mail == NULL)
    return NULL;
  if (strcmp (bare, "i") == 0)
    return mail->queue_id_known ? mail->queue_id : NULL;
  if (strcmp (bare, "mail_addr") == 0)
    return mail->sender;
  if (strcmp (bare, "mail_host") == 0 || strcmp (bare, "rcpt_host") == 0)
    {
      const char *address = bare[0] == 'm' ? mail->sender : recipients[mail->rcpt];
      const char *at = strrchr (address, '@');
      return at != NULL ? at + 1 : NULL;
    }
  if (strcmp (bare, "mail_mailer") == 0 || strcmp (bare, "rcpt_mailer") == 0)
    return "smtp";
  if (strcmp (bare, "rcpt_addr") == 0)
    return recipients[mail->rcpt];
  return NULL;
}

/* Queues the SMFIC_MACRO packet of STAGE for COMMAND: the milter's own list
 * for that stage if it sent one, else Postfix's default list. */
static gboolean
put_macros (Session *s, const Mail *mail, int stage, char command)
{
  if (s->macro_names[stage] == NULL)
    {
      const char *names = s->symlists[stage] != NULL && s->symlists[stage][0] != '\0'
                          ? s->symlists[stage] : postfix_macros[stage];
      s->macro_names[stage] = g_strsplit_set (names, " ,\t", -1);
    }
  char **list = s->macro_names[stage];
  g_byte_array_set_size (s->macros, 0);
  g_byte_array_append (s->macros, (const guint8 *) &command, 1);
  for (guint i = 0; list[i] != NULL; i++)
    {
      if (list[i][0] == '\0')
        continue;
      g_autofree char *scratch = NULL;
      const char *value = macro_value (s, mail, list[i], &scratch);
      if (value == NULL)
        continue;
      packet_string (s->macros, list[i]);
      packet_string (s->macros, value);
    }
  return put_packet (s, SMFIC_MACRO, s->macros->data, s->macros->len);
}

/* ---- events and replies -------------------------------------------------- */

typedef enum {
  REPLY_CONTINUE,   /* go on (also: no reply awaited, or the step is skipped) */
  REPLY_ACCEPT,
  REPLY_DISCARD,
  REPLY_REJECT,
  REPLY_TEMPFAIL,
  REPLY_SHUTDOWN,   /* SMFIR_SHUTDOWN or SMFIR_CONN_FAIL: the session ends */
  REPLY_ERROR,      /* s->error says why */
} Reply;

/* Events that the negotiated version does not have are never sent (Postfix's
 * np_mask): DATA came with version 4, UNKNOWN with 3. */
static gboolean
event_in_version (const Session *s, guint32 skip_flag)
{
  if (skip_flag == SMFIP_NODATA)
    return s->version >= 4;
  return TRUE;
}

/* Checks one end-of-message modification against what was negotiated. */
static gboolean
note_modification (Session *s, char code, const char *waiting_for)
{
  const guint8 *data = s->reply->data;
  gsize length = s->reply->len;
  const char *strings[3];
  guint count = 0;
  guint32 needed = 0;
  int kind = -1;
  gboolean well_formed = FALSE;

  switch (code)
    {
    case SMFIR_ADDHEADER:
      needed = SMFIF_ADDHDRS, kind = MOD_ADD_HEADER;
      well_formed = payload_strings (data, length, strings, 2, &count) && count == 2
                    && strings[0][0] != '\0';
      break;
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
      needed = code == SMFIR_INSHEADER ? SMFIF_ADDHDRS : SMFIF_CHGHDRS;
      kind = code == SMFIR_INSHEADER ? MOD_INSERT_HEADER : MOD_CHANGE_HEADER;
      well_formed = length > 4
                    && payload_strings (data + 4, length - 4, strings, 2, &count)
                    && count == 2 && strings[0][0] != '\0';
      if (well_formed && code == SMFIR_CHGHEADER && strings[1][0] == '\0')
        kind = MOD_DELETE_HEADER;   /* an empty value deletes the header */
      break;
    case SMFIR_ADDRCPT:
    case SMFIR_DELRCPT:
      needed = code == SMFIR_ADDRCPT ? SMFIF_ADDRCPT : SMFIF_DELRCPT;
      kind = code == SMFIR_ADDRCPT ? MOD_ADD_RCPT : MOD_DELETE_RCPT;
      well_formed = payload_strings (data, length, strings, 1, &count) && count == 1
                    && strings[0][0] != '\0';
      break;
    case SMFIR_ADDRCPT_PAR:
    case SMFIR_CHGFROM:
      needed = code == SMFIR_ADDRCPT_PAR ? SMFIF_ADDRCPT_PAR : SMFIF_CHGFROM;
      kind = code == SMFIR_ADDRCPT_PAR ? MOD_ADD_RCPT : MOD_CHANGE_FROM;
      well_formed = payload_strings (data, length, strings, 2, &count)
                    && (count == 1 || count == 2) && strings[0][0] != '\0';
      break;
    case SMFIR_REPLBODY:
      needed = SMFIF_CHGBODY, kind = MOD_REPLACE_BODY;
      well_formed = TRUE;
      break;
    case SMFIR_QUARANTINE:
      needed = SMFIF_QUARANTINE, kind = MOD_QUARANTINE;
      well_formed = payload_strings (data, length, strings, 1, &count) && count == 1;
      break;
    default:
      session_fail (s, "unexpected reply '%c' to %s", g_ascii_isprint (code) ? code : '?',
                    waiting_for);
      return FALSE;
    }
  if (!well_formed)
    {
      session_fail (s, "malformed '%c' request (%zu bytes) in the reply to %s", code, length,
                    waiting_for);
      return FALSE;
    }
  if ((s->actions & needed) == 0)
    {
      s->counts->warnings++;
      report_error ("warning: thread %u connection %u: '%c' request without the action "
                    "0x%x negotiated", s->thread, s->serial, code, needed);
    }
  s->counts->mods[kind]++;
  return TRUE;
}

/* Reads the reply to COMMAND until a final one. Modifications are only
 * allowed after BODYEOB; progress reports are skipped. */
static Reply
read_reply (Session *s, char command)
{
  const char *waiting_for = command_name (command);
  for (;;)
    {
      char code;
      if (!read_packet (s, &code, waiting_for))
        return REPLY_ERROR;
      gboolean empty = s->reply->len == 0;
      switch (code)
        {
        case SMFIR_PROGRESS:
          continue;
        case SMFIR_CONTINUE:
          if (empty)
            return REPLY_CONTINUE;
          break;
        case SMFIR_ACCEPT:
          if (empty)
            return REPLY_ACCEPT;
          break;
        case SMFIR_DISCARD:
          if (empty)
            return REPLY_DISCARD;
          break;
        case SMFIR_REJECT:
          if (empty)
            return REPLY_REJECT;
          break;
        case SMFIR_TEMPFAIL:
          if (empty)
            return REPLY_TEMPFAIL;
          break;
        case SMFIR_SHUTDOWN:
        case SMFIR_CONN_FAIL:
          return REPLY_SHUTDOWN;
        case SMFIR_SKIP:
          if (!empty)
            break;
          if ((s->protocol & SMFIP_SKIP) == 0)
            report_error ("warning: thread %u connection %u: SMFIR_SKIP without SMFIP_SKIP "
                          "negotiated", s->thread, s->serial);
          s->skip_event = command;
          return REPLY_CONTINUE;
        case SMFIR_REPLYCODE:
          {
            const guint8 *text = s->reply->data;
            gsize length = s->reply->len;
            if (length < 4 || text[length - 1] != '\0' || (text[0] != '4' && text[0] != '5')
                || !g_ascii_isdigit (text[1]) || !g_ascii_isdigit (text[2])
                || (text[3] != ' ' && text[3] != '-'))
              {
                session_fail (s, "malformed SMFIR_REPLYCODE in the reply to %s", waiting_for);
                return REPLY_ERROR;
              }
            return text[0] == '4' ? REPLY_TEMPFAIL : REPLY_REJECT;
          }
        default:
          if (command != SMFIC_BODYEOB)
            {
              session_fail (s, "unexpected reply '%c' to %s",
                            g_ascii_isprint (code) ? code : '?', waiting_for);
              return REPLY_ERROR;
            }
          if (!note_modification (s, code, waiting_for))
            return REPLY_ERROR;
          continue;
        }
      session_fail (s, "reply '%c' to %s carries %u unexpected bytes", code, waiting_for,
                    s->reply->len);
      return REPLY_ERROR;
    }
}

/* Sends one event the way milter8_event does: macros first (even for a step
 * the milter skips), then the event unless skipped, then its reply unless the
 * milter waived it. The payload is in s->packet. */
static Reply
send_event (Session *s, const Mail *mail, char command, int stage, guint32 skip_flag,
            guint32 no_reply_flag)
{
  if (!event_in_version (s, skip_flag))
    return REPLY_CONTINUE;
  if (s->skip_event != 0)
    {
      if (s->skip_event == command)
        return REPLY_CONTINUE;
      s->skip_event = 0;
    }
  if (stage >= 0 && !put_macros (s, mail, stage, command))
    return REPLY_ERROR;
  if ((s->protocol & skip_flag) != 0)
    return REPLY_CONTINUE;
  if (!put_packet (s, command, s->packet->data, s->packet->len))
    return REPLY_ERROR;
  if ((s->protocol & no_reply_flag) != 0)
    return REPLY_CONTINUE;
  return read_reply (s, command);
}

static gboolean
negotiate (Session *s)
{
  g_byte_array_set_size (s->packet, 0);
  packet_u32 (s->packet, 6);
  packet_u32 (s->packet, MTA_ACTIONS);
  packet_u32 (s->packet, MTA_PROTOCOL);
  if (!put_packet (s, SMFIC_OPTNEG, s->packet->data, s->packet->len))
    return FALSE;
  char code;
  if (!read_packet (s, &code, "OPTNEG"))
    return FALSE;
  const guint8 *data = s->reply->data;
  gsize length = s->reply->len;
  if (code != SMFIC_OPTNEG || length < 12)
    {
      session_fail (s, "the milter answered the negotiation with '%c' (%zu bytes)",
                    g_ascii_isprint (code) ? code : '?', length);
      return FALSE;
    }
  guint32 fields[3];
  memcpy (fields, data, 12);
  s->version = ntohl (fields[0]);
  s->actions = ntohl (fields[1]);
  s->protocol = ntohl (fields[2]);
  if (s->version < 2 || s->version > 6)
    {
      session_fail (s, "the milter wants protocol version %u (this MTA speaks 2 to 6)",
                    s->version);
      return FALSE;
    }
  if ((s->actions & MTA_ACTIONS) != s->actions)
    {
      session_fail (s, "the milter asks for actions 0x%x, more than the 0x%x offered",
                    s->actions, MTA_ACTIONS);
      return FALSE;
    }
  /* Then the macro lists it wants per stage: stage, names, NUL. */
  gsize at = 12;
  while (at < length)
    {
      guint32 stage;
      const char *names = (const char *) data + at + 4;
      if (length - at < 5 || memchr (names, '\0', length - at - 4) == NULL)
        {
          session_fail (s, "malformed macro list in the negotiation reply");
          return FALSE;
        }
      memcpy (&stage, data + at, 4);
      stage = ntohl (stage);
      if (stage < STAGE_COUNT)
        {
          g_free (s->symlists[stage]);
          s->symlists[stage] = g_strdup (names);
        }
      else
        report_error ("warning: thread %u connection %u: macro list for unknown stage %u "
                      "ignored", s->thread, s->serial, stage);
      at += 4 + strlen (names) + 1;
    }

  pthread_mutex_lock (&report_lock);
  if (!negotiated_known)
    {
      negotiated_known = TRUE;
      negotiated_version = s->version;
      negotiated_actions = s->actions;
      negotiated_protocol = s->protocol;
      for (int i = 0; i < STAGE_COUNT; i++)
        negotiated_symlists[i] = g_strdup (s->symlists[i]);
    }
  pthread_mutex_unlock (&report_lock);
  return TRUE;
}

static Session *
session_new (guint thread, Counts *counts)
{
  Session *s = g_new0 (Session, 1);
  s->fd = -1;
  s->thread = thread;
  s->out = g_byte_array_sized_new (FLUSH_AT + 8192);
  s->packet = g_byte_array_new ();
  s->macros = g_byte_array_new ();
  s->reply = g_byte_array_new ();
  s->counts = counts;
  g_snprintf (s->client_port, sizeof s->client_port, "%u", 40000 + thread % 20000);
  return s;
}

/* Closes the connection (with SMFIC_QUIT when the session is sound). */
static void
session_close (Session *s)
{
  if (s->fd >= 0)
    {
      if (s->error == NULL && put_packet (s, SMFIC_QUIT, NULL, 0))
        session_flush (s);
      close (s->fd);
      s->fd = -1;
    }
  g_byte_array_set_size (s->out, 0);
  s->in_pos = s->in_len = 0;
  s->skip_event = 0;
  for (int i = 0; i < STAGE_COUNT; i++)
    {
      g_clear_pointer (&s->symlists[i], g_free);
      g_clear_pointer (&s->macro_names[i], g_strfreev);
    }
  g_clear_pointer (&s->error, g_free);
}

static void
session_free (Session *s)
{
  session_close (s);
  g_byte_array_unref (s->out);
  g_byte_array_unref (s->packet);
  g_byte_array_unref (s->macros);
  g_byte_array_unref (s->reply);
  g_free (s);
}

/* Connects, negotiates and sends CONNECT and HELO. On failure *why says why
 * and the session is closed. */
static gboolean
session_open (Session *s, char **why)
{
  s->fd = connect_milter (opt.socket_spec, why);
  if (s->fd < 0)
    return FALSE;
  struct timeval timeout = { .tv_sec = opt.timeout };
  setsockopt (s->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt (s->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  s->counts->sessions++;

  Reply reply = REPLY_ERROR;
  if (negotiate (s))
    {
      /* CONNECT: host name, family, port (network order), address. */
      g_byte_array_set_size (s->packet, 0);
      packet_string (s->packet, "client.example.net");
      gboolean v6 = strchr (opt.client_addr, ':') != NULL;
      g_byte_array_append (s->packet, (const guint8 *) (v6 ? "6" : "4"), 1);
      guint16 port = htons ((guint16) atoi (s->client_port));
      g_byte_array_append (s->packet, (const guint8 *) &port, 2);
      packet_string (s->packet, opt.client_addr);
      reply = send_event (s, NULL, SMFIC_CONNECT, STAGE_CONNECT, SMFIP_NOCONNECT,
                          SMFIP_NR_CONN);
      if (reply == REPLY_CONTINUE)
        {
          g_byte_array_set_size (s->packet, 0);
          packet_string (s->packet, "client.example.net");
          reply = send_event (s, NULL, SMFIC_HELO, STAGE_HELO, SMFIP_NOHELO, SMFIP_NR_HELO);
        }
      if (reply != REPLY_CONTINUE && reply != REPLY_ERROR)
        session_fail (s, "the milter answered CONNECT or HELO with %s: nothing to measure",
                      outcome_names[reply == REPLY_ACCEPT ? OUT_ACCEPT
                                    : reply == REPLY_DISCARD ? OUT_DISCARD
                                    : reply == REPLY_REJECT ? OUT_REJECT
                                    : reply == REPLY_TEMPFAIL ? OUT_TEMPFAIL : OUT_SHUTDOWN]);
    }
  if (s->error == NULL)
    return TRUE;
  *why = g_strdup (s->error);
  session_close (s);
  return FALSE;
}

/* ---- sending one mail ---------------------------------------------------- */

static void
mail_init (Mail *mail, guint64 number)
{
  memset (mail, 0, sizeof *mail);
  mail->number = number;
  /* Postfix's short queue ids are upper-case hex. */
  g_snprintf (mail->queue_id, sizeof mail->queue_id, "%s%08" G_GINT64_MODIFIER "X",
              run_tag + strlen (run_tag) - 4, (guint64) number);
  mail->sender = g_strdup_printf ("customer-%s-%" G_GUINT64_FORMAT "@example.net", run_tag,
                                  number);
  if (mail_template.from >= 0)
    mail->from_value = g_strdup_printf (" =?UTF-8?B?2LPYp9ix2Kk=?= <%s>", mail->sender);
  if (mail_template.message_id >= 0)
    mail->message_id_value = g_strdup_printf (" <%" G_GUINT64_FORMAT ".%s@load.example.net>",
                                              number, run_tag);
  mail->queue_id_known = opt.queue_id_at_mail;
}

static void
mail_clear (Mail *mail)
{
  g_free (mail->sender);
  g_free (mail->from_value);
  g_free (mail->message_id_value);
}

static int
outcome_of (Reply reply)
{
  switch (reply)
    {
    case REPLY_ACCEPT: return OUT_ACCEPT;
    case REPLY_CONTINUE: return OUT_CONTINUE;
    case REPLY_DISCARD: return OUT_DISCARD;
    case REPLY_REJECT: return OUT_REJECT;
    case REPLY_TEMPFAIL: return OUT_TEMPFAIL;
    case REPLY_SHUTDOWN: return OUT_SHUTDOWN;
    default: return OUT_ERROR;
    }
}

/* Sends the envelope, the headers and body bytes up to BODY_LIMIT (all of the
 * body when G_MAXSIZE). REPLY_CONTINUE when the milter wants the rest. */
static Reply
send_until (Session *s, Mail *mail, gsize body_limit, gboolean stop_after_mail)
{
  g_byte_array_set_size (s->packet, 0);
  g_autofree char *bracketed = g_strdup_printf ("<%s>", mail->sender);
  packet_string (s->packet, bracketed);
  Reply reply = send_event (s, mail, SMFIC_MAIL, STAGE_ENVFROM, SMFIP_NOMAIL, SMFIP_NR_MAIL);
  if (reply != REPLY_CONTINUE || stop_after_mail)
    return reply;

  /* Postfix opens the queue file at the first valid RCPT: {i} exists now. */
  mail->queue_id_known = TRUE;
  guint accepted = 0;
  Reply last_refusal = REPLY_REJECT;
  for (mail->rcpt = 0; mail->rcpt < opt.rcpt_count; mail->rcpt++)
    {
      g_byte_array_set_size (s->packet, 0);
      g_autofree char *address = g_strdup_printf ("<%s>", recipients[mail->rcpt]);
      packet_string (s->packet, address);
      reply = send_event (s, mail, SMFIC_RCPT, STAGE_ENVRCPT, SMFIP_NORCPT, SMFIP_NR_RCPT);
      if (reply == REPLY_REJECT || reply == REPLY_TEMPFAIL)
        {
          last_refusal = reply;   /* that recipient only */
          continue;
        }
      if (reply != REPLY_CONTINUE)
        return reply;
      accepted++;
    }
  mail->rcpt = 0;
  if (accepted == 0)
    return last_refusal;

  g_byte_array_set_size (s->packet, 0);
  reply = send_event (s, mail, SMFIC_DATA, STAGE_DATA, SMFIP_NODATA, SMFIP_NR_DATA);
  if (reply != REPLY_CONTINUE)
    return reply;

  gboolean leading_space = (s->protocol & SMFIP_HDR_LEADSPC) != 0;
  for (guint i = 0; i < mail_template.headers->len; i++)
    {
      const Header *header = g_ptr_array_index (mail_template.headers, i);
      const char *value = header->value;
      if ((int) i == mail_template.message_id && mail->message_id_value != NULL)
        value = mail->message_id_value;
      else if ((int) i == mail_template.from && mail->from_value != NULL)
        value = mail->from_value;
      /* Without HDR_LEADSPC the MTA eats the one space after the colon. */
      if (!leading_space && value[0] == ' ')
        value++;
      g_byte_array_set_size (s->packet, 0);
      packet_string (s->packet, header->name);
      packet_string (s->packet, value);
      reply = send_event (s, mail, SMFIC_HEADER, STAGE_EOH, SMFIP_NOHDRS, SMFIP_NR_HDR);
      if (reply != REPLY_CONTINUE)
        return reply;
    }
  g_byte_array_set_size (s->packet, 0);
  reply = send_event (s, mail, SMFIC_EOH, STAGE_EOH, SMFIP_NOEOH, SMFIP_NR_EOH);
  if (reply != REPLY_CONTINUE)
    return reply;

  gsize body_end = MIN (body_limit, (gsize) mail_template.body->len);
  for (gsize at = 0; at < body_end; at += BODY_CHUNK)
    {
      gsize chunk = MIN ((gsize) BODY_CHUNK, body_end - at);
      g_byte_array_set_size (s->packet, 0);
      g_byte_array_append (s->packet, mail_template.body->data + at, (guint) chunk);
      reply = send_event (s, mail, SMFIC_BODY, STAGE_EOM, SMFIP_NOBODY, SMFIP_NR_BODY);
      if (reply != REPLY_CONTINUE)
        return reply;
    }
  return REPLY_CONTINUE;
}

/* Sends one whole mail and records its outcome and end-of-message latency.
 * FALSE when the session cannot go on (error, shutdown). */
static gboolean
send_mail (Session *s, guint64 number)
{
  Mail mail;
  mail_init (&mail, number);
  Reply reply = send_until (s, &mail, G_MAXSIZE, FALSE);
  gboolean at_end = FALSE;
  if (reply == REPLY_CONTINUE)
    {
      /* Everything before BODYEOB is on its way before the clock starts. */
      if (session_flush (s))
        {
          gint64 started = now_ns ();
          g_byte_array_set_size (s->packet, 0);
          reply = send_event (s, &mail, SMFIC_BODYEOB, STAGE_EOM, 0, 0);
          if (reply != REPLY_ERROR)
            latency_ns[number] = now_ns () - started;
          at_end = TRUE;
        }
      else
        reply = REPLY_ERROR;
    }

  int outcome = outcome_of (reply);
  if (at_end || outcome == OUT_ERROR)
    s->counts->outcomes[outcome]++;
  else
    {
      s->counts->early++;
      s->counts->early_outcomes[outcome]++;
    }
  if (outcome == OUT_ERROR)
    report_error ("thread %u connection %u, mail %" G_GUINT64_FORMAT ": %s", s->thread,
                  s->serial, number, s->error != NULL ? s->error : "unknown error");
  mail_clear (&mail);
  if (outcome == OUT_SHUTDOWN)
    session_fail (s, "the milter ended the session");   /* closed without QUIT */
  if (outcome == OUT_ERROR || outcome == OUT_SHUTDOWN)
    return FALSE;
  /* Postfix's smtpd resets the milter after every transaction. */
  if (opt.send_abort)
    put_packet (s, SMFIC_ABORT, NULL, 0);
  return s->error == NULL;
}

/* ---- the load ------------------------------------------------------------ */

typedef struct {
  pthread_t thread;
  guint index;
  Counts counts;
} Worker;

/* Waits until mail NUMBER is due under --rate. */
static void
pace (guint64 number)
{
  if (opt.rate <= 0)
    return;
  gint64 due = load_start_ns + (gint64) ((double) number * 1e9 / opt.rate);
  struct timespec until = { .tv_sec = due / 1000000000, .tv_nsec = due % 1000000000 };
  while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
    ;
}

/* One worker: sessions of --per-connection mails each, one after the other,
 * taking mail numbers from the shared counter until all are sent. */
static void *
worker_run (void *data)
{
  Worker *worker = data;
  Session *s = session_new (worker->index + 1, &worker->counts);
  guint in_session = 0;

  while (!atomic_load (&stop_all))
    {
      guint64 number = atomic_fetch_add (&next_mail, 1);
      if (number >= opt.mails)
        break;
      if (s->fd < 0)
        {
          s->serial++;
          char *why = NULL;
          gboolean opened = FALSE;
          /* A milter at its connection limit may refuse for a moment. */
          for (int attempt = 0; attempt < 3 && !opened; attempt++)
            {
              if (attempt > 0)
                g_usleep (100000 * attempt);
              g_free (why);
              why = NULL;
              opened = session_open (s, &why);
            }
          if (!opened)
            {
              /* The milter is gone: one message, not one per thread. */
              if (!atomic_exchange (&stop_all, TRUE))
                report_error ("%s; stopping", why);
              g_free (why);
              atomic_store (&fatal_exit, EXIT_UNAVAILABLE);
              break;
            }
          in_session = 0;
        }
      pace (number);
      gboolean going_on = send_mail (s, number);
      in_session++;
      if (!going_on || in_session >= opt.per_connection)
        session_close (s);
    }
  session_free (s);
  return NULL;
}

/* Opens one idle session for --hold and sends its mail up to the hold point. */
static Session *
hold_open (guint index, guint64 number, Counts *counts)
{
  Session *s = session_new (0, counts);
  s->serial = index + 1;
  char *why = NULL;
  if (!session_open (s, &why))
    {
      report_error ("hold session %u: %s", index + 1, why);
      g_free (why);
      session_free (s);
      return NULL;
    }
  Mail mail;
  mail_init (&mail, number);
  Reply reply = send_until (s, &mail, opt.hold_in_body ? mail_template.body->len / 2 : 0,
                            !opt.hold_in_body);
  mail_clear (&mail);
  if (reply == REPLY_CONTINUE && session_flush (s))
    return s;
  report_error ("hold session %u: %s", index + 1,
                s->error != NULL ? s->error : "the milter refused the mail before its end");
  session_free (s);
  return NULL;
}

/* ---- the milter's process ------------------------------------------------ */

typedef struct {
  gint64 rss_kb;   /* -1: unknown */
  gint64 hwm_kb;
} Memory;

static Memory
read_memory (long pid)
{
  Memory memory = { -1, -1 };
  char path[64];
  g_snprintf (path, sizeof path, "/proc/%ld/status", pid);
  FILE *status = fopen (path, "r");
  if (status == NULL)
    return memory;
  char line[256];
  while (fgets (line, sizeof line, status) != NULL)
    {
      if (strncmp (line, "VmRSS:", 6) == 0)
        memory.rss_kb = g_ascii_strtoll (line + 6, NULL, 10);
      else if (strncmp (line, "VmHWM:", 6) == 0)
        memory.hwm_kb = g_ascii_strtoll (line + 6, NULL, 10);
    }
  fclose (status);
  return memory;
}

/* User plus system CPU seconds the process used so far; -1 when unknown. */
static double
read_cpu_seconds (long pid)
{
  char path[64];
  g_snprintf (path, sizeof path, "/proc/%ld/stat", pid);
  g_autofree char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, NULL))
    return -1;
  /* Fields after the command name, which may hold spaces and parentheses. */
  const char *after = strrchr (text, ')');
  if (after == NULL)
    return -1;
  g_auto (GStrv) fields = g_strsplit (after + 2, " ", -1);
  if (g_strv_length (fields) < 13)
    return -1;
  double ticks = (double) sysconf (_SC_CLK_TCK);
  /* utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'. */
  return (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) / ticks;
}

static atomic_bool sampler_stop;
static atomic_int_fast64_t peak_rss_kb = -1;

static void *
sampler_run (void *data)
{
  (void) data;
  while (!atomic_load (&sampler_stop))
    {
      Memory memory = read_memory (opt.pid);
      gint64 peak = atomic_load (&peak_rss_kb);
      while (memory.rss_kb > peak
             && !atomic_compare_exchange_weak (&peak_rss_kb, &peak, memory.rss_kb))
        ;
      g_usleep (10000);
    }
  return NULL;
}

/* ---- the mail template --------------------------------------------------- */

static gboolean
is_header_name (const char *start, gsize length)
{
  if (length == 0)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    if ((guchar) start[i] <= ' ' || (guchar) start[i] >= 0x7f || start[i] == ':')
      return FALSE;
  return TRUE;
}

static void
template_add_header (Template *t, const char *name, const char *value)
{
  Header *header = g_new (Header, 1);
  header->name = g_strdup (name);
  header->value = g_strdup (value);
  g_ptr_array_add (t->headers, header);
  t->bytes += strlen (name) + 1 + strlen (value) + 2;
}

static void
template_add_body_line (Template *t, const char *line, gsize length)
{
  g_byte_array_append (t->body, (const guint8 *) line, (guint) length);
  g_byte_array_append (t->body, (const guint8 *) "\r\n", 2);
}

/* The built-in customer mail: Arabic and English, about --size bytes. */
static void
template_generate (Template *t)
{
  g_autofree char *subject = g_base64_encode ((const guchar *) "فاتورتي لم تصل",
                                              strlen ("فاتورتي لم تصل"));
  g_autofree char *subject_value = g_strdup_printf (" =?UTF-8?B?%s?=", subject);
  t->from = (int) t->headers->len;
  template_add_header (t, "From", " =?UTF-8?B?2LPYp9ix2Kk=?= <customer@example.net>");
  g_autofree char *to = g_strdup_printf (" %s", recipients[0]);
  template_add_header (t, "To", to);
  template_add_header (t, "Subject", subject_value);
  template_add_header (t, "Date", " Mon, 23 Nov 2026 09:00:00 +0300");
  t->message_id = (int) t->headers->len;
  template_add_header (t, "Message-ID", " <0@load.example.net>");
  template_add_header (t, "MIME-Version", " 1.0");
  template_add_header (t, "Content-Type", " text/plain; charset=UTF-8");
  template_add_header (t, "Content-Transfer-Encoding", " 8bit");
  t->bytes += 2;
  static const char line[] = "مرحبا، لم تصل فاتورتي لشهر أكتوبر. Hello, my invoice did not arrive.";
  while (t->bytes + t->body->len < opt.size)
    template_add_body_line (t, line, strlen (line));
}

/* Postfix's cleanup drops these (message_drop_headers): milters never see them. */
static void
template_add_file_header (Template *t, const char *name, const char *value)
{
  static const char *const dropped[] = { "Bcc", "Content-Length", "Resent-Bcc", "Return-Path" };
  for (gsize i = 0; i < G_N_ELEMENTS (dropped); i++)
    if (g_ascii_strcasecmp (name, dropped[i]) == 0)
      return;
  template_add_header (t, name, value);
}

/* A message file: headers unfolded into name and value (continuation lines
 * joined by "\n", as Postfix passes them), body lines ending in CRLF. */
static gboolean
template_load (Template *t, const char *path, GError **error)
{
  g_autofree char *text = NULL;
  gsize length;
  if (!g_file_get_contents (path, &text, &length, error))
    return FALSE;
  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  gsize start = 0;
  for (gsize i = 0; i <= length; i++)
    if (i == length || text[i] == '\n')
      {
        if (i == length && start == length)
          break;   /* the file ended with a newline */
        gsize end = i;
        if (end > start && text[end - 1] == '\r')
          end--;
        g_ptr_array_add (lines, g_strndup (text + start, end - start));
        start = i + 1;
      }

  guint at = 0;
  GString *value = NULL;
  char *name = NULL;
  for (; at < lines->len; at++)
    {
      const char *line = g_ptr_array_index (lines, at);
      if ((line[0] == ' ' || line[0] == '\t') && name != NULL)
        {
          g_string_append_printf (value, "\n%s", line);
          continue;
        }
      if (name != NULL)
        {
          template_add_file_header (t, name, value->str);
          g_clear_pointer (&name, g_free);
          g_string_free (value, TRUE);
        }
      const char *colon = strchr (line, ':');
      gsize name_length = colon != NULL ? (gsize) (colon - line) : 0;
      while (name_length > 0 && (line[name_length - 1] == ' ' || line[name_length - 1] == '\t'))
        name_length--;
      if (colon == NULL || !is_header_name (line, name_length))
        break;   /* the blank line, or a line that starts the body */
      name = g_strndup (line, name_length);
      value = g_string_new (colon + 1);
    }
  if (name != NULL)
    {
      template_add_file_header (t, name, value->str);
      g_free (name);
      g_string_free (value, TRUE);
    }
  if (at < lines->len && ((const char *) g_ptr_array_index (lines, at))[0] == '\0')
    at++;   /* the blank line between headers and body */
  for (; at < lines->len; at++)
    {
      const char *line = g_ptr_array_index (lines, at);
      template_add_body_line (t, line, strlen (line));
    }

  t->message_id = -1;
  for (guint i = 0; i < t->headers->len; i++)
    if (g_ascii_strcasecmp (((Header *) g_ptr_array_index (t->headers, i))->name,
                            "Message-ID") == 0)
      t->message_id = (int) i;
  if (!opt.keep_message_id && t->message_id < 0)
    {
      /* Postfix's cleanup adds a missing Message-ID; the milter sees it. */
      t->message_id = (int) t->headers->len;
      template_add_header (t, "Message-ID", " <0@load.example.net>");
    }
  if (opt.keep_message_id)
    t->message_id = -1;
  t->bytes += 2;
  return TRUE;
}

/* ---- the report ---------------------------------------------------------- */

static int
compare_gint64 (const void *a, const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of SORTED (COUNT values), in milliseconds. */
static double
percentile_ms (const gint64 *sorted, gsize count, double percent)
{
  if (count == 0)
    return 0;
  gsize rank = (gsize) ((percent / 100.0) * (double) count + 0.999999);
  rank = CLAMP (rank, 1, count);
  return (double) sorted[rank - 1] / 1e6;
}

static void
json_string (GString *out, const char *text)
{
  g_string_append_c (out, '"');
  for (const char *c = text; *c != '\0'; c++)
    {
      if (*c == '"' || *c == '\\')
        g_string_append_printf (out, "\\%c", *c);
      else if ((guchar) *c < 0x20)
        g_string_append_printf (out, "\\u%04x", (guchar) *c);
      else
        g_string_append_c (out, *c);
    }
  g_string_append_c (out, '"');
}

static void
json_kb (GString *out, const char *key, gint64 kb, gboolean last)
{
  if (kb < 0)
    g_string_append_printf (out, "\"%s\": null%s", key, last ? "" : ", ");
  else
    g_string_append_printf (out, "\"%s\": %" G_GINT64_FORMAT "%s", key, kb, last ? "" : ", ");
}

static char *
megabytes (gint64 kb)
{
  return kb < 0 ? g_strdup ("?") : g_strdup_printf ("%.1f MB", (double) kb / 1024.0);
}

/* Names of the step flags set in PROTOCOL. */
static char *
protocol_names (guint32 protocol)
{
  static const struct { guint32 flag; const char *name; } names[] = {
    { SMFIP_NOCONNECT, "NOCONNECT" }, { SMFIP_NOHELO, "NOHELO" }, { SMFIP_NOMAIL, "NOMAIL" },
    { SMFIP_NORCPT, "NORCPT" }, { SMFIP_NOBODY, "NOBODY" }, { SMFIP_NOHDRS, "NOHDRS" },
    { SMFIP_NOEOH, "NOEOH" }, { SMFIP_NOUNKNOWN, "NOUNKNOWN" }, { SMFIP_NODATA, "NODATA" },
    { SMFIP_SKIP, "SKIP" }, { SMFIP_RCPT_REJ, "RCPT_REJ" }, { SMFIP_NR_CONN, "NR_CONN" },
    { SMFIP_NR_HELO, "NR_HELO" }, { SMFIP_NR_MAIL, "NR_MAIL" }, { SMFIP_NR_RCPT, "NR_RCPT" },
    { SMFIP_NR_DATA, "NR_DATA" }, { SMFIP_NR_UNKN, "NR_UNKN" }, { SMFIP_NR_HDR, "NR_HDR" },
    { SMFIP_NR_EOH, "NR_EOH" }, { SMFIP_NR_BODY, "NR_BODY" },
    { SMFIP_HDR_LEADSPC, "HDR_LEADSPC" },
  };
  GString *out = g_string_new (NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    if ((protocol & names[i].flag) != 0)
      g_string_append_printf (out, "%s%s", out->len > 0 ? " " : "", names[i].name);
  return g_string_free (out, FALSE);
}

typedef struct {
  Counts total;
  guint64 tried;           /* mails answered or failed; the rest were never sent */
  double seconds;
  gint64 *sorted;          /* measured latencies, sorted */
  gsize measured;
  Memory before, after;
  gint64 held_rss_kb, peak_kb;
  double milter_cpu;       /* seconds during the load, -1 unknown */
  double client_cpu;
  guint holds_open;
} Results;

static void
print_text (const Results *r)
{
  const Counts *c = &r->total;
  guint64 completed = 0;
  for (int i = 0; i < OUT_ERROR; i++)
    completed += c->outcomes[i];
  completed += c->early;

  printf ("milter-load: %s, %u sessions, %" G_GUINT64_FORMAT " mails (%u per connection), "
          "%u recipient%s, %zu-byte mail", opt.socket_spec, opt.sessions, opt.mails,
          opt.per_connection, opt.rcpt_count, opt.rcpt_count == 1 ? "" : "s",
          mail_template.bytes + mail_template.body->len);
  if (opt.rate > 0)
    printf (", rate %.1f/s", opt.rate);
  if (opt.hold > 0)
    printf (", %u held %s", opt.hold, opt.hold_in_body ? "mid-body" : "after MAIL FROM");
  printf ("\n");
  if (negotiated_known)
    {
      g_autofree char *names = protocol_names (negotiated_protocol);
      printf ("negotiated:    version %u, actions 0x%x, steps 0x%x (%s)\n", negotiated_version,
              negotiated_actions, negotiated_protocol, names);
      for (int i = 0; i < STAGE_COUNT; i++)
        if (negotiated_symlists[i] != NULL)
          printf ("               macros asked for stage %d: %s\n", i, negotiated_symlists[i]);
    }
  if (opt.mails > 0)
    {
      printf ("mails:         %" G_GUINT64_FORMAT " answered in %.3f s = %.1f mails/s\n",
              completed, r->seconds, r->seconds > 0 ? (double) completed / r->seconds : 0);
      printf ("eom latency:   p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms (%zu mails)\n",
              percentile_ms (r->sorted, r->measured, 50),
              percentile_ms (r->sorted, r->measured, 90),
              percentile_ms (r->sorted, r->measured, 99),
              r->measured > 0 ? (double) r->sorted[r->measured - 1] / 1e6 : 0, r->measured);
      printf ("replies:       accept %" G_GUINT64_FORMAT ", continue %" G_GUINT64_FORMAT
              ", discard %" G_GUINT64_FORMAT ", reject %" G_GUINT64_FORMAT
              ", tempfail %" G_GUINT64_FORMAT ", shutdown %" G_GUINT64_FORMAT
              "; before end of message %" G_GUINT64_FORMAT "; errors %" G_GUINT64_FORMAT
              "; not sent %" G_GUINT64_FORMAT "\n",
              c->outcomes[OUT_ACCEPT], c->outcomes[OUT_CONTINUE], c->outcomes[OUT_DISCARD],
              c->outcomes[OUT_REJECT], c->outcomes[OUT_TEMPFAIL], c->outcomes[OUT_SHUTDOWN],
              c->early, c->outcomes[OUT_ERROR], opt.mails - MIN (r->tried, opt.mails));
      printf ("modifications:");
      gboolean any = FALSE;
      for (int i = 0; i < MOD_COUNT; i++)
        if (c->mods[i] > 0)
          {
            printf ("%s %s %" G_GUINT64_FORMAT, any ? "," : "", mod_names[i], c->mods[i]);
            any = TRUE;
          }
      printf ("%s\n", any ? "" : " none");
      if (c->warnings > 0)
        printf ("warnings:      %" G_GUINT64_FORMAT " requests for actions not negotiated\n",
                c->warnings);
      printf ("connections:   %" G_GUINT64_FORMAT "; load generator CPU %.3f ms per mail\n",
              c->sessions, completed > 0 ? r->client_cpu * 1000 / (double) completed : 0);
    }
  if (opt.pid > 0)
    {
      g_autofree char *before = megabytes (r->before.rss_kb);
      g_autofree char *held = megabytes (r->held_rss_kb);
      g_autofree char *peak = megabytes (r->peak_kb);
      g_autofree char *after = megabytes (r->after.rss_kb);
      g_autofree char *hwm = megabytes (r->after.hwm_kb);
      printf ("milter RSS:    before %s", before);
      if (opt.hold > 0)
        printf (", %u sessions held %s", r->holds_open, held);
      printf (", peak %s, after %s; VmHWM %s", peak, after, hwm);
      if (r->milter_cpu >= 0 && completed > 0)
        printf ("; CPU %.3f ms per mail", r->milter_cpu * 1000 / (double) completed);
      printf ("\n");
    }
}

static void
print_json (const Results *r)
{
  const Counts *c = &r->total;
  guint64 completed = c->early;
  for (int i = 0; i < OUT_ERROR; i++)
    completed += c->outcomes[i];
  GString *out = g_string_new ("{");
  g_string_append (out, "\"socket\": ");
  json_string (out, opt.socket_spec);
  g_string_append_printf (out, ", \"sessions\": %u, \"mails\": %" G_GUINT64_FORMAT
                          ", \"per_connection\": %u, \"recipients\": %u, \"mail_bytes\": %zu"
                          ", \"hold\": %u, \"hold_open\": %u, \"rate\": %g",
                          opt.sessions, opt.mails, opt.per_connection, opt.rcpt_count,
                          mail_template.bytes + mail_template.body->len, opt.hold,
                          r->holds_open, opt.rate);
  if (negotiated_known)
    g_string_append_printf (out, ", \"negotiated\": {\"version\": %u, \"actions\": %u"
                            ", \"protocol\": %u}", negotiated_version, negotiated_actions,
                            negotiated_protocol);
  else
    g_string_append (out, ", \"negotiated\": null");
  g_string_append_printf (out, ", \"completed\": %" G_GUINT64_FORMAT
                          ", \"not_sent\": %" G_GUINT64_FORMAT
                          ", \"seconds\": %.6f, \"mails_per_second\": %.3f",
                          completed, opt.mails - MIN (r->tried, opt.mails), r->seconds,
                          r->seconds > 0 ? (double) completed / r->seconds : 0);
  g_string_append_printf (out, ", \"eom_ms\": {\"count\": %zu, \"p50\": %.4f, \"p90\": %.4f"
                          ", \"p99\": %.4f, \"max\": %.4f}", r->measured,
                          percentile_ms (r->sorted, r->measured, 50),
                          percentile_ms (r->sorted, r->measured, 90),
                          percentile_ms (r->sorted, r->measured, 99),
                          r->measured > 0 ? (double) r->sorted[r->measured - 1] / 1e6 : 0);
  g_string_append (out, ", \"replies\": {");
  for (int i = 0; i < OUT_ERROR; i++)
    g_string_append_printf (out, "%s\"%s\": %" G_GUINT64_FORMAT, i > 0 ? ", " : "",
                            outcome_names[i], c->outcomes[i]);
  g_string_append (out, "}, \"early_replies\": {");
  for (int i = 0; i < OUT_ERROR; i++)
    g_string_append_printf (out, "%s\"%s\": %" G_GUINT64_FORMAT, i > 0 ? ", " : "",
                            outcome_names[i], c->early_outcomes[i]);
  g_string_append_printf (out, "}, \"errors\": %" G_GUINT64_FORMAT, c->outcomes[OUT_ERROR]);
  g_string_append (out, ", \"modifications\": {");
  for (int i = 0; i < MOD_COUNT; i++)
    g_string_append_printf (out, "%s\"%s\": %" G_GUINT64_FORMAT, i > 0 ? ", " : "",
                            mod_names[i], c->mods[i]);
  g_string_append_printf (out, "}, \"warnings\": %" G_GUINT64_FORMAT
                          ", \"connections\": %" G_GUINT64_FORMAT
                          ", \"client_cpu_ms_per_mail\": %.4f",
                          c->warnings, c->sessions,
                          completed > 0 ? r->client_cpu * 1000 / (double) completed : 0);
  if (opt.pid > 0)
    {
      g_string_append_printf (out, ", \"milter\": {\"pid\": %ld, \"rss_kb\": {", opt.pid);
      json_kb (out, "before", r->before.rss_kb, FALSE);
      json_kb (out, "held", r->held_rss_kb, FALSE);
      json_kb (out, "peak", r->peak_kb, FALSE);
      json_kb (out, "after", r->after.rss_kb, TRUE);
      g_string_append (out, "}, \"hwm_kb\": {");
      json_kb (out, "before", r->before.hwm_kb, FALSE);
      json_kb (out, "after", r->after.hwm_kb, TRUE);
      if (r->milter_cpu >= 0 && completed > 0)
        g_string_append_printf (out, "}, \"cpu_ms_per_mail\": %.4f}",
                                r->milter_cpu * 1000 / (double) completed);
      else
        g_string_append (out, "}, \"cpu_ms_per_mail\": null}");
    }
  g_string_append (out, "}\n");
  fputs (out->str, stdout);
  g_string_free (out, TRUE);
}

/* ---- the command line ---------------------------------------------------- */

static const char usage_summary[] =
  "-s SOCKET [-c SESSIONS] [-n MAILS] [-m PER_CONNECTION] [OPTION...]";

static G_GNUC_NORETURN void
usage_error (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
usage_error (const char *format, ...)
{
  va_list args;
  va_start (args, format);
  fputs ("milter-load: ", stderr);
  vfprintf (stderr, format, args);
  va_end (args);
  fprintf (stderr, "\nusage: milter-load %s\n(milter-load --help for all options)\n",
           usage_summary);
  exit (EXIT_USAGE);
}

static guint64
parse_count (const char *option, const char *text, guint64 min, guint64 max)
{
  guint64 value;
  g_autoptr (GError) error = NULL;
  if (text == NULL)
    usage_error ("%s needs a number", option);
  if (!g_ascii_string_to_unsigned (text, 10, min, max, &value, &error))
    usage_error ("%s %s: a whole number from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                 " is needed", option, text, min, max);
  return value;
}

static double
parse_real (const char *option, const char *text, double min, double max)
{
  char *end = NULL;
  double value = g_ascii_strtod (text, &end);
  if (text[0] == '\0' || end == NULL || *end != '\0' || !(value >= min && value <= max))
    usage_error ("%s %s: a number from %g to %g is needed", option, text, min, max);
  return value;
}

static void
parse_options (int argc, char **argv)
{
  char *sessions = NULL, *mails = NULL, *per_connection = NULL, *rcpts = NULL;
  char *size = NULL, *hold = NULL, *hold_at = NULL, *hold_seconds = NULL, *rate = NULL;
  char *pid = NULL, *timeout = NULL;
  gboolean no_abort = FALSE;
  GOptionEntry entries[] = {
    { "socket", 's', 0, G_OPTION_ARG_STRING, &opt.socket_spec,
      "The milter: unix:/path, inet:PORT@HOST or inet6:PORT@HOST (required)", "SOCKET" },
    { "sessions", 'c', 0, G_OPTION_ARG_STRING, &sessions,
      "Sessions (connections) at once, one thread each (20)", "N" },
    { "mails", 'n', 0, G_OPTION_ARG_STRING, &mails, "Mails in all (1000); 0 with --hold", "N" },
    { "per-connection", 'm', 0, G_OPTION_ARG_STRING, &per_connection,
      "Mails per connection before SMFIC_QUIT (10)", "N" },
    { "rcpts", 0, 0, G_OPTION_ARG_STRING, &rcpts,
      "Envelope recipients per mail (1): --rcpt, then cc-2@example.test ...", "N" },
    { "rcpt", 0, 0, G_OPTION_ARG_STRING, &opt.first_rcpt,
      "The first recipient (support@example.test)", "ADDR" },
    { "size", 0, 0, G_OPTION_ARG_STRING, &size, "Bytes of the generated mail (4096)", "BYTES" },
    { "file", 0, 0, G_OPTION_ARG_FILENAME, &opt.file,
      "Send this message instead of the generated one", "EML" },
    { "keep-message-id", 0, 0, G_OPTION_ARG_NONE, &opt.keep_message_id,
      "Send --file's Message-ID unchanged (every copy is then a duplicate)", NULL },
    { "hold", 0, 0, G_OPTION_ARG_STRING, &hold,
      "Sessions kept open and idle during the load (0)", "N" },
    { "hold-at", 0, 0, G_OPTION_ARG_STRING, &hold_at,
      "Where held sessions stop: mail (after MAIL FROM) or body (mid-body)", "WHERE" },
    { "hold-seconds", 0, 0, G_OPTION_ARG_STRING, &hold_seconds,
      "With -n 0: how long to hold them (1)", "S" },
    { "rate", 0, 0, G_OPTION_ARG_STRING, &rate, "Start at most R mails per second", "R" },
    { "pid", 0, 0, G_OPTION_ARG_STRING, &pid, "The milter's process: memory and CPU", "PID" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &opt.json, "One JSON object on stdout", NULL },
    { "timeout", 0, 0, G_OPTION_ARG_STRING, &timeout,
      "Seconds to wait for a reply or a write (60)", "S" },
    { "no-abort", 0, 0, G_OPTION_ARG_NONE, &no_abort,
      "No SMFIC_ABORT between the mails of a connection", NULL },
    { "queue-id-at-mail", 0, 0, G_OPTION_ARG_NONE, &opt.queue_id_at_mail,
      "Send {i} from MAIL FROM on (smtpd_delay_open_until_valid_rcpt = no)", NULL },
    { "client-addr", 0, 0, G_OPTION_ARG_STRING, &opt.client_addr,
      "The SMTP client's address in CONNECT and {client_addr} (192.0.2.10)", "IP" },
    { "auth", 0, 0, G_OPTION_ARG_STRING, &opt.auth_user,
      "Send {auth_authen} USER and {auth_type} PLAIN at MAIL FROM", "USER" },
    { "trace", 0, 0, G_OPTION_ARG_NONE, &opt.trace, "Print every packet on stderr", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr (GOptionContext) context = g_option_context_new (NULL);
  g_option_context_set_summary (context,
    "Drives a milter as Postfix 3.7 does (protocol version 6) and measures mails per\n"
    "second, end-of-message latency and, with --pid, the milter's memory.\n"
    "Exit status: 0 every mail answered, 1 some mails failed, 64 usage, 69 milter unreachable.");
  g_option_context_add_main_entries (context, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (context, &argc, &argv, &error))
    usage_error ("%s", error->message);
  if (argc > 1)
    usage_error ("unexpected argument %s", argv[1]);
  if (opt.socket_spec == NULL)
    usage_error ("-s SOCKET is required");
  const char *spec = opt.socket_spec;
  const char *port = g_str_has_prefix (spec, "inet:") ? spec + 5
                     : g_str_has_prefix (spec, "inet6:") ? spec + 6 : NULL;
  if (port != NULL)
    {
      g_autofree char *number = g_strndup (port, strcspn (port, "@"));
      guint64 ignored;
      if (!g_ascii_string_to_unsigned (number, 10, 1, 65535, &ignored, NULL))
        usage_error ("-s %s: the port must be a number from 1 to 65535", spec);
    }
  else if (!g_str_has_prefix (spec, "unix:/") && !g_str_has_prefix (spec, "local:/")
           && spec[0] != '/')
    usage_error ("-s %s: unix:/path, inet:PORT@HOST or inet6:PORT@HOST", spec);

  if (sessions != NULL)
    opt.sessions = (guint) parse_count ("-c", sessions, 1, 10000);
  if (mails != NULL)
    opt.mails = parse_count ("-n", mails, 0, 100000000);
  if (per_connection != NULL)
    opt.per_connection = (guint) parse_count ("-m", per_connection, 1, 100000000);
  if (rcpts != NULL)
    opt.rcpt_count = (guint) parse_count ("--rcpts", rcpts, 1, 1000);
  if (size != NULL)
    opt.size = (guint) parse_count ("--size", size, 0, 256u << 20);
  if (hold != NULL)
    opt.hold = (guint) parse_count ("--hold", hold, 0, 10000);
  if (hold_at != NULL)
    {
      if (strcmp (hold_at, "mail") == 0)
        opt.hold_in_body = FALSE;
      else if (strcmp (hold_at, "body") == 0)
        opt.hold_in_body = TRUE;
      else
        usage_error ("--hold-at %s: mail or body", hold_at);
    }
  if (hold_seconds != NULL)
    opt.hold_seconds = parse_real ("--hold-seconds", hold_seconds, 0, 86400);
  if (rate != NULL)
    opt.rate = parse_real ("--rate", rate, 0.001, 1e9);
  if (pid != NULL)
    opt.pid = (long) parse_count ("--pid", pid, 1, G_MAXINT32);
  if (timeout != NULL)
    opt.timeout = (guint) parse_count ("--timeout", timeout, 1, 86400);
  opt.send_abort = !no_abort;
  if (opt.file != NULL && size != NULL)
    usage_error ("--size and --file exclude each other");
  if (opt.keep_message_id && opt.file == NULL)
    usage_error ("--keep-message-id goes with --file");
  if (opt.mails == 0 && opt.hold == 0)
    usage_error ("-n 0 only makes sense with --hold");
  if (opt.first_rcpt == NULL)
    opt.first_rcpt = g_strdup ("support@example.test");
  if (opt.client_addr == NULL)
    opt.client_addr = g_strdup ("192.0.2.10");
  if (opt.pid > 0 && read_memory (opt.pid).rss_kb < 0)
    usage_error ("--pid %ld: no such process (cannot read /proc/%ld/status)", opt.pid, opt.pid);

  g_free (sessions); g_free (mails); g_free (per_connection); g_free (rcpts);
  g_free (size); g_free (hold); g_free (hold_at); g_free (hold_seconds); g_free (rate);
  g_free (pid); g_free (timeout);
}

/* Every session is a descriptor: raise the soft limit if needed. */
static void
ensure_descriptors (void)
{
  struct rlimit limit;
  rlim_t wanted = (rlim_t) opt.sessions + opt.hold + 64;
  if (getrlimit (RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted)
    return;
  limit.rlim_cur = MIN (wanted, limit.rlim_max);
  setrlimit (RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < wanted)
    usage_error ("%u sessions and %u held need %lu descriptors, the limit is %lu",
                 opt.sessions, opt.hold, (unsigned long) wanted, (unsigned long) limit.rlim_cur);
}

static double
own_cpu_seconds (void)
{
  struct rusage usage;
  getrusage (RUSAGE_SELF, &usage);
  return (double) usage.ru_utime.tv_sec + (double) usage.ru_utime.tv_usec / 1e6
         + (double) usage.ru_stime.tv_sec + (double) usage.ru_stime.tv_usec / 1e6;
}

int
main (int argc, char **argv)
{
  parse_options (argc, argv);
  ensure_descriptors ();
  signal (SIGPIPE, SIG_IGN);

  recipients = g_new0 (char *, opt.rcpt_count + 1);
  recipients[0] = g_strdup (opt.first_rcpt);
  for (guint i = 1; i < opt.rcpt_count; i++)
    recipients[i] = g_strdup_printf ("cc-%u@example.test", i + 1);
  run_tag = g_strdup_printf ("%" G_GINT64_MODIFIER "x", g_get_real_time ());

  mail_template.headers = g_ptr_array_new ();
  mail_template.body = g_byte_array_new ();
  mail_template.message_id = -1;
  mail_template.from = -1;
  if (opt.file != NULL)
    {
      g_autoptr (GError) error = NULL;
      if (!template_load (&mail_template, opt.file, &error))
        usage_error ("--file: %s", error->message);
    }
  else
    template_generate (&mail_template);

  latency_ns = g_new (gint64, MAX (opt.mails, 1));
  for (guint64 i = 0; i < opt.mails; i++)
    latency_ns[i] = -1;

  /* One session first: an unreachable milter is one clear message, and the
   * negotiation is known before anything is measured. */
  Counts probe_counts = { 0 };
  Session *probe = session_new (0, &probe_counts);
  char *why = NULL;
  if (!session_open (probe, &why))
    {
      fprintf (stderr, "milter-load: %s\n", why);
      g_free (why);
      session_free (probe);
      return EXIT_UNAVAILABLE;
    }
  session_free (probe);

  Results results = { .held_rss_kb = -1, .peak_kb = -1, .milter_cpu = -1 };
  pthread_t sampler;
  if (opt.pid > 0)
    {
      results.before = read_memory (opt.pid);
      atomic_store (&peak_rss_kb, results.before.rss_kb);
      pthread_create (&sampler, NULL, sampler_run, NULL);
    }

  /* Held sessions first, with mail numbers after the measured ones. */
  Counts hold_counts = { 0 };
  Session **held = g_new0 (Session *, opt.hold + 1);
  for (guint i = 0; i < opt.hold; i++)
    {
      held[i] = hold_open (i, opt.mails + i, &hold_counts);
      if (held[i] == NULL)
        break;
      results.holds_open++;
    }
  if (results.holds_open < opt.hold)
    {
      fprintf (stderr, "milter-load: only %u of %u held sessions could be opened\n",
               results.holds_open, opt.hold);
      atomic_store (&fatal_exit, EXIT_UNAVAILABLE);
    }
  else if (opt.hold > 0 && opt.pid > 0)
    {
      /* Held sessions' packets need no reply: give the milter a moment to
       * read them before its memory is looked at. */
      g_usleep (500000);
      results.held_rss_kb = read_memory (opt.pid).rss_kb;
    }

  double cpu_start = opt.pid > 0 ? read_cpu_seconds (opt.pid) : -1;
  double own_start = own_cpu_seconds ();
  load_start_ns = now_ns ();
  Worker *workers = g_new0 (Worker, opt.sessions);
  guint started = 0;
  if (atomic_load (&fatal_exit) == 0 && opt.mails > 0)
    for (; started < MIN ((guint64) opt.sessions, opt.mails); started++)
      {
        workers[started].index = started;
        if (pthread_create (&workers[started].thread, NULL, worker_run, &workers[started]) != 0)
          {
            fprintf (stderr, "milter-load: cannot start thread %u\n", started + 1);
            atomic_store (&stop_all, TRUE);
            atomic_store (&fatal_exit, 1);
            break;
          }
      }
  else if (opt.mails == 0 && results.holds_open > 0)
    g_usleep ((gulong) (opt.hold_seconds * 1e6));
  for (guint i = 0; i < started; i++)
    pthread_join (workers[i].thread, NULL);
  results.seconds = (double) (now_ns () - load_start_ns) / 1e9;
  results.client_cpu = own_cpu_seconds () - own_start;
  if (cpu_start >= 0)
    {
      double cpu_end = read_cpu_seconds (opt.pid);
      results.milter_cpu = cpu_end >= 0 ? cpu_end - cpu_start : -1;
    }

  for (guint i = 0; i < results.holds_open; i++)
    session_free (held[i]);
  g_free (held);

  if (opt.pid > 0)
    {
      /* Let the milter's per-connection threads end before "after". */
      g_usleep (500000);
      atomic_store (&sampler_stop, TRUE);
      pthread_join (sampler, NULL);
      results.after = read_memory (opt.pid);
      results.peak_kb = MAX (atomic_load (&peak_rss_kb), results.after.rss_kb);
    }

  for (guint i = 0; i < started; i++)
    {
      Counts *c = &workers[i].counts;
      for (int k = 0; k < OUT_COUNT; k++)
        {
          results.total.outcomes[k] += c->outcomes[k];
          results.total.early_outcomes[k] += c->early_outcomes[k];
        }
      for (int k = 0; k < MOD_COUNT; k++)
        results.total.mods[k] += c->mods[k];
      results.total.early += c->early;
      results.total.warnings += c->warnings;
      results.total.sessions += c->sessions;
    }
  results.total.warnings += hold_counts.warnings;
  results.tried = results.total.early;
  for (int k = 0; k < OUT_COUNT; k++)
    results.tried += results.total.outcomes[k];

  results.sorted = g_new (gint64, MAX (opt.mails, 1));
  for (guint64 i = 0; i < opt.mails; i++)
    if (latency_ns[i] >= 0)
      results.sorted[results.measured++] = latency_ns[i];
  qsort (results.sorted, results.measured, sizeof (gint64), compare_gint64);

  if (opt.json)
    print_json (&results);
  else
    print_text (&results);

  int status = atomic_load (&fatal_exit);
  if (status == 0 && (results.total.outcomes[OUT_ERROR] > 0 || results.tried < opt.mails))
    status = 1;
  g_free (results.sorted);
  g_free (workers);
  return status;
}
