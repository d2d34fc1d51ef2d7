/* null-milter.c - a milter that does nothing, as cheaply as the protocol allows.
 *
 * The floor against which ticket-milter's cost is measured (bench/run-postfix.sh):
 * whatever throughput Postfix loses with this milter is the price of the milter
 * protocol itself, not of anything ticket-milter does.
 *
 *   null-milter -p SOCKET [-m receive|skip] [-e] [-u MODE]
 *
 *   -p SOCKET  libmilter notation: unix:/path or inet:PORT@127.0.0.1
 *   -m receive (default) receives the events ticket-milter needs (MAIL FROM,
 *              RCPT TO, headers, body, end of message) but negotiates no reply
 *              for any of them (SMFIP_NR_*), so only end of message costs a
 *              round trip; connect, HELO, DATA and unknown commands are skipped.
 *      skip    skips every event except end of message: the absolute floor.
 *   -e         edits each message as ticket-milter edits a new customer's
 *              mail: adds four X-Ticket-* headers and rewrites the Subject
 *              (a new one if the mail had none). What Postfix's cleanup pays
 *              to apply them is then part of the floor, so that a comparison
 *              shows ticket-milter's own cost apart from the edits' cost.
 *   -u MODE    octal permissions set on a unix socket once it exists (default
 *              0666, so that Postfix's smtpd, running as postfix, can connect).
 *
 * Every message is accepted unchanged. Runs in the foreground until SIGTERM or
 * SIGINT (libmilter's smfi_main handles those; the unix socket is then removed).
 * Limits: no configuration, no logging, no per-connection state.
 *
 * Build: gcc -std=c11 -O2 -D_GNU_SOURCE bench/null-milter.c -o null-milter -lmilter -lpthread
 */
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int receive_content = 1;
static int edit_like_ticket_milter = 0;

/* Per connection: whether the current mail had a Subject (-e only). */
struct null_state
{
  int subject_seen;
};

/* The steps agreed with the MTA. Every connection from one Postfix agrees on
   the same set, so the value written by each negotiation is the same. */
static unsigned long agreed_steps;

static sfsistat
null_negotiate (SMFICTX *ctx, unsigned long offered_actions,
                unsigned long offered_steps, unsigned long unused_f2,
                unsigned long unused_f3, unsigned long *wanted_actions,
                unsigned long *wanted_steps, unsigned long *wanted_f2,
                unsigned long *wanted_f3)
{
  unsigned long skip = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOUNKNOWN
                       | SMFIP_NODATA;
  unsigned long no_reply = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_UNKN
                           | SMFIP_NR_DATA | SMFIP_NR_MAIL | SMFIP_NR_RCPT
                           | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;

  if (!receive_content)
    skip |= SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOHDRS | SMFIP_NOEOH
            | SMFIP_NOBODY;
  *wanted_actions = edit_like_ticket_milter ? (SMFIF_ADDHDRS | SMFIF_CHGHDRS) & offered_actions : 0;
  /* Ask only for what this MTA offers: an MTA that cannot skip a step or
     drop a reply keeps sending it, and the callbacks below still answer. */
  *wanted_steps = (skip | no_reply) & offered_steps;
  *wanted_f2 = 0;
  *wanted_f3 = 0;
  agreed_steps = *wanted_steps;
  return SMFIS_CONTINUE;
}

/* SMFIS_NOREPLY is only valid when the matching SMFIP_NR_* flag was agreed. */
static sfsistat
reply_or_not (unsigned long nr_flag)
{
  return (agreed_steps & nr_flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat
null_envfrom (SMFICTX *ctx, char **argv)
{
  return reply_or_not (SMFIP_NR_MAIL);
}

static sfsistat
null_envrcpt (SMFICTX *ctx, char **argv)
{
  return reply_or_not (SMFIP_NR_RCPT);
}

static sfsistat
null_header (SMFICTX *ctx, char *name, char *value)
{
  if (edit_like_ticket_milter && strcasecmp (name, "Subject") == 0)
    {
      struct null_state *state = smfi_getpriv (ctx);
      if (state != NULL)
        state->subject_seen = 1;
    }
  return reply_or_not (SMFIP_NR_HDR);
}

static sfsistat
null_eoh (SMFICTX *ctx)
{
  return reply_or_not (SMFIP_NR_EOH);
}

static sfsistat
null_body (SMFICTX *ctx, unsigned char *chunk, size_t len)
{
  return reply_or_not (SMFIP_NR_BODY);
}

/* -e: the same number of edits of the same sizes as ticket-milter makes
   for a new customer's first mail (see ticketctl simulate's "headers"). */
static sfsistat
null_eom (SMFICTX *ctx)
{
  if (!edit_like_ticket_milter)
    return SMFIS_ACCEPT;
  struct null_state *state = smfi_getpriv (ctx);
  int subject_seen = state != NULL && state->subject_seen;
  if (state != NULL)
    state->subject_seen = 0;
  if (smfi_addheader (ctx, "X-Ticket-Customer",
                      "customer@example.net; open=0; total=0; last=0") != MI_SUCCESS
      || smfi_addheader (ctx, "X-Ticket-ID", "1042") != MI_SUCCESS
      || smfi_addheader (ctx, "X-Ticket-Queue", "support") != MI_SUCCESS
      || smfi_addheader (ctx, "X-Ticket-Priority", "normal") != MI_SUCCESS)
    return SMFIS_TEMPFAIL;
  char *subject = "[Ticket#1042] =?UTF-8?B?2YHYp9iq2YjYsdiq2Yog2YTZhSDYqti12YQ=?=";
  int status = subject_seen ? smfi_chgheader (ctx, "Subject", 1, subject)
                            : smfi_addheader (ctx, "Subject", subject);
  return status == MI_SUCCESS ? SMFIS_ACCEPT : SMFIS_TEMPFAIL;
}

static sfsistat
null_envfrom_with_state (SMFICTX *ctx, char **argv)
{
  if (smfi_getpriv (ctx) == NULL)
    smfi_setpriv (ctx, calloc (1, sizeof (struct null_state)));
  return reply_or_not (SMFIP_NR_MAIL);
}

static sfsistat
null_close (SMFICTX *ctx)
{
  free (smfi_getpriv (ctx));
  smfi_setpriv (ctx, NULL);
  return SMFIS_CONTINUE;
}

static struct smfiDesc null_milter = {
  .xxfi_name = "null-milter",
  .xxfi_version = SMFI_VERSION,
  .xxfi_flags = 0,
  .xxfi_envfrom = null_envfrom,
  .xxfi_envrcpt = null_envrcpt,
  .xxfi_header = null_header,
  .xxfi_eoh = null_eoh,
  .xxfi_body = null_body,
  .xxfi_eom = null_eom,
  .xxfi_negotiate = null_negotiate,
};

static void
usage (void)
{
  fprintf (stderr, "usage: null-milter -p SOCKET [-m receive|skip] [-e] [-u MODE]\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  const char *socket_spec = NULL;
  mode_t socket_mode = 0666;
  int opt;

  while ((opt = getopt (argc, argv, "p:m:eu:")) != -1)
    switch (opt)
      {
      case 'p':
        socket_spec = optarg;
        break;
      case 'm':
        if (strcmp (optarg, "receive") == 0)
          receive_content = 1;
        else if (strcmp (optarg, "skip") == 0)
          receive_content = 0;
        else
          usage ();
        break;
      case 'e':
        edit_like_ticket_milter = 1;
        null_milter.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
        null_milter.xxfi_envfrom = null_envfrom_with_state;
        null_milter.xxfi_close = null_close;
        break;
      case 'u':
        socket_mode = (mode_t) strtoul (optarg, NULL, 8);
        break;
      default:
        usage ();
      }
  if (socket_spec == NULL || optind != argc)
    usage ();

  if (smfi_setconn ((char *) socket_spec) == MI_FAILURE
      || smfi_register (null_milter) == MI_FAILURE)
    {
      fprintf (stderr, "null-milter: cannot use socket %s\n", socket_spec);
      return 1;
    }
  /* Open the socket now (removing a stale one) so that its mode can be set
     before smfi_main starts accepting. */
  if (smfi_opensocket (1) == MI_FAILURE)
    {
      fprintf (stderr, "null-milter: cannot open socket %s\n", socket_spec);
      return 1;
    }
  const char *path = NULL;
  if (strncmp (socket_spec, "unix:", 5) == 0
      || strncmp (socket_spec, "local:", 6) == 0)
    {
      path = strchr (socket_spec, ':') + 1;
      if (chmod (path, socket_mode) != 0)
        {
          perror ("null-milter: chmod socket");
          return 1;
        }
    }
  int status = smfi_main () == MI_SUCCESS ? 0 : 1;
  /* libmilter leaves the socket file behind when it stops. */
  if (path != NULL)
    unlink (path);
  return status;
}
