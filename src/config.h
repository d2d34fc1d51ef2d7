/* config.h - ticket-milter configuration: one GKeyFile, one typed table.
 *
 * The whole configuration is read and checked once, at start, by
 * tm_config_load(). Every key has a built-in default, so a missing default
 * file still runs: one queue "support" (support@localhost) and a database in
 * LOCALSTATEDIR/lib/ticket-milter. Unknown groups, unknown keys and bad values
 * are errors that name the file, the group and the key; the daemon refuses to
 * start on them rather than guess.
 *
 * Groups and keys (defaults in brackets); ticket-milter.conf(5) is the manual:
 *   [milter] socket [unix:RUNSTATEDIR/ticket-milter/ticket-milter.sock]
 *            on_error [tempfail] (tempfail | accept)
 *            user [ticket-milter] (empty: keep the starting user)
 *            socket_mode [0660]  pid_file [empty: none]
 *            max_message_size [10M]  max_header_size [1M]
 *            trusted_networks [127.0.0.1/32;::1/128]
 *   [store]  path [LOCALSTATEDIR/lib/ticket-milter/tickets.db]
 *            busy_timeout [5000] (milliseconds)  synchronous [full] (full|normal)
 *            group_commit [64] (1..1000: mails that may share one commit)
 *   [smtp]   url [smtp://127.0.0.1:25]  starttls [no] (no | try | require)
 *            verify_peer [yes]  ca_file [system]  username [none: no AUTH]
 *            password  helo_name [libcurl's]  connect_timeout [10s]
 *            timeout [60s]  retry_min [1m]  retry_max [1h]  give_up_after [5d]
 *            workers [4] (1..64: acknowledgements delivered at once)
 *   [parser] fallback_charsets [UTF-8;windows-1256]
 *   [templates] dir [DATADIR/ticket-milter/templates]
 *   [autoreply] spam_header [X-Spam-Flag]  spam_value [yes] (first word,
 *            any case)  no_reply_senders [noreply;no-reply;donotreply;
 *            do-not-reply;bounce;bounces] (local parts, also as prefixes
 *            followed by '-', '+', '.' or '_')
 *   [queue NAME]  address [NAME@localhost] (';'-separated list)
 *                 tag_prefix [Ticket]  team [none]  language [en]
 *                 display_name [none]  hours [none: always open]
 *                 ack [yes]  ack_followups [no]  ack_rate_limit [1h] (0: none)
 *                 first_response [1d]  keep_address [no] (keep the queue
 *                 address as a recipient when routing to a team)
 *                 form_senders [none] (';'-separated: contact-form senders,
 *                 whose customer is the Reply-To address)
 *   [rules]  file [none] (a file of more [rule NAME] groups, read after
 *            those of this file)
 *   [rule NAME]   conditions and actions, see rules.h and
 *                 ticket-milter.conf(5); in file order
 *   [team NAME]   mailbox (required)  agents [none] (';'-separated)
 *   [hours NAME]  timezone [UTC]  days [mon-fri]  open [09:00-17:00]
 *                 holidays [none] (see hours.h)
 * Durations are a whole number with an optional unit: s, m, h, d, w ("90s",
 * "15m", "4h"); without a unit, seconds. Booleans are yes/no, true/false,
 * on/off or 1/0.
 *
 * Templates are loaded from [templates] dir when the configuration is
 * loaded: every queue that acknowledges must find "ack" (and, with hours,
 * "after-hours") in its default language, so a missing or broken template
 * stops start-up instead of a send.
 *
 * Ownership: a TmConfig owns every string and sub-structure in it; pointers
 * handed out by the lookup functions live as long as the TmConfig.
 */
#ifndef TM_CONFIG_H
#define TM_CONFIG_H

#include <glib.h>

#include "hours.h"
#include "rules.h"
#include "smtp_client.h"
#include "template.h"

#define TM_CONFIG_ERROR (tm_config_error_quark ())
GQuark tm_config_error_quark (void);
typedef enum {
  TM_CONFIG_ERROR_READ,      /* the file cannot be read */
  TM_CONFIG_ERROR_SYNTAX,    /* not a key file (message names the line) */
  TM_CONFIG_ERROR_UNKNOWN,   /* unknown group or key */
  TM_CONFIG_ERROR_VALUE,     /* a value that does not fit its key */
} TmConfigError;

typedef enum {
  TM_ON_ERROR_TEMPFAIL,      /* the MTA keeps the mail and retries */
  TM_ON_ERROR_ACCEPT,        /* the mail passes without a ticket */
} TmOnError;

typedef struct {
  char *name;                /* group suffix: [queue NAME] */
  char **addresses;          /* lower-cased, NULL-terminated, at least one */
  char *tag_prefix;          /* "Ticket" gives [Ticket#1042] */
  char *team;                /* name of a [team] group, or NULL */
  char *language;            /* default template language, e.g. "en" */
  char *display_name;        /* From: display name and {{queue.name}}, or NULL */
  char *hours_name;          /* name of an [hours] group, or NULL */
  const TmHours *hours;      /* that group, borrowed from the config; NULL: always open */
  gboolean ack;              /* acknowledge new tickets */
  gboolean ack_followups;    /* acknowledge follow-ups too */
  guint ack_rate_limit_s;    /* at most one reply per sender per period; 0: no limit */
  guint first_response_s;    /* the first-response target told to customers */
  gboolean keep_address;     /* routing to a team keeps the queue address */
  char **form_senders;       /* lower-cased, NULL-terminated (maybe empty) */
} TmQueue;

typedef struct {
  char *name;                /* group suffix: [team NAME] */
  char *mailbox;             /* lower-cased address that receives its tickets */
  char **agents;             /* lower-cased addresses, NULL-terminated */
} TmTeam;

typedef struct {
  char *source;              /* file read, or NULL for built-in defaults */

  char *milter_socket;       /* libmilter's notation (milter_server.h) */
  TmOnError on_error;
  char *user;                /* NULL: do not change user */
  guint socket_mode;
  char *pid_file;            /* NULL: none */
  gsize max_message_size;    /* body bytes kept; the rest is counted only */
  gsize max_header_size;     /* header bytes kept */
  GPtrArray *trusted_networks; /* of GInetAddressMask* */

  char *store_path;
  guint busy_timeout_ms;
  gboolean synchronous_full;
  guint group_commit_max;    /* mails of concurrent sessions sharing one COMMIT */

  char *smtp_url;
  TmSmtpStarttls smtp_starttls;
  gboolean smtp_verify_peer;
  char *smtp_ca_file;        /* NULL: the system's */
  char *smtp_username;       /* NULL: no AUTH */
  char *smtp_password;
  char *smtp_helo_name;      /* NULL: libcurl's default */
  guint smtp_connect_timeout_s;
  guint smtp_timeout_s;
  guint smtp_retry_min_s;    /* first retry after a temporary failure */
  guint smtp_retry_max_s;    /* the backoff doubles up to this */
  guint smtp_give_up_after_s; /* a mail still undelivered this long after it was
                                 queued is marked failed */
  guint smtp_workers;        /* delivery threads, each with its own connection */

  char *template_dir;
  TmTemplateSet *templates;  /* loaded from template_dir by tm_config_load */

  char *spam_header;         /* header that marks spam, e.g. X-Spam-Flag */
  char *spam_value;          /* its first word when it does, e.g. "yes" */
  char **no_reply_senders;   /* lower-cased local parts, NULL-terminated */

  char **fallback_charsets;  /* NULL-terminated, for raw 8-bit and unknown text */

  GPtrArray *queues;         /* of TmQueue*, in file order */
  GPtrArray *teams;          /* of TmTeam*, in file order */
  GPtrArray *hours;          /* of TmHours*, in file order */

  char *rules_file;          /* [rules] file, or NULL */
  TmRuleSet *rules;          /* every [rule NAME], main file first; never NULL */
} TmConfig;

/* The built-in defaults without any queue and without templates; never
 * fails. For tests that fill in a configuration by hand. */
TmConfig *tm_config_new_default (void) G_GNUC_WARN_UNUSED_RESULT;

/* Reads PATH. With must_exist FALSE a missing file gives the defaults (the
 * daemon's default path); with TRUE it is an error (a path given with -c).
 * Returns NULL with *error set (message: "FILE: [group] key: what is wrong"). */
TmConfig *tm_config_load (const char *path, gboolean must_exist,
                          GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* Frees the configuration and clears the caller's pointer. */
void tm_config_free (TmConfig **config);

/* The default path of the configuration file. Static string. */
const char *tm_config_default_path (void);

/* The queue that owns ADDRESS (any case, with or without <>), or NULL. */
const TmQueue *tm_config_queue_for_address (const TmConfig *config,
                                            const char *address);
const TmQueue *tm_config_queue_by_name (const TmConfig *config, const char *name);
const TmTeam *tm_config_team_by_name (const TmConfig *config, const char *name);
const TmHours *tm_config_hours_by_name (const TmConfig *config, const char *name);

/* TRUE when ADDRESS (any case) is an agent of any team. */
gboolean tm_config_is_agent (const TmConfig *config, const char *address);

/* TRUE when the client address string (IPv4 or IPv6) is in trusted_networks. */
gboolean tm_config_is_trusted_client (const TmConfig *config,
                                      const char *client_addr);

/* Lower-cases ADDRESS (ASCII letters) and strips surrounding <> and white
 * space; bytes that are not UTF-8 and control characters become U+FFFD.
 * Returns a new string; "" for the null sender. */
char *tm_address_normalize (const char *address) G_GNUC_WARN_UNUSED_RESULT;

#endif
