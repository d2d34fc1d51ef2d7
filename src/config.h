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
 *   [smtp]   url [smtp://127.0.0.1:25]
 *   [parser] fallback_charsets [UTF-8;windows-1256]
 *   [queue NAME]  address [NAME@localhost] (';'-separated list)
 *                 tag_prefix [Ticket]  team [none]  language [en]
 *   [team NAME]   mailbox (required)  agents [none] (';'-separated)
 *
 * Ownership: a TmConfig owns every string and sub-structure in it; pointers
 * handed out by the lookup functions live as long as the TmConfig.
 */
#ifndef TM_CONFIG_H
#define TM_CONFIG_H

#include <glib.h>

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
} TmQueue;

typedef struct {
  char *name;                /* group suffix: [team NAME] */
  char *mailbox;             /* lower-cased address that receives its tickets */
  char **agents;             /* lower-cased addresses, NULL-terminated */
} TmTeam;

typedef struct {
  char *source;              /* file read, or NULL for built-in defaults */

  char *milter_socket;       /* libmilter notation */
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

  char *smtp_url;

  char **fallback_charsets;  /* NULL-terminated, for raw 8-bit and unknown text */

  GPtrArray *queues;         /* of TmQueue*, in file order */
  GPtrArray *teams;          /* of TmTeam*, in file order */
} TmConfig;

/* The built-in defaults; never fails. */
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

/* TRUE when ADDRESS (any case) is an agent of any team. */
gboolean tm_config_is_agent (const TmConfig *config, const char *address);

/* TRUE when the client address string (IPv4 or IPv6) is in trusted_networks. */
gboolean tm_config_is_trusted_client (const TmConfig *config,
                                      const char *client_addr);

/* Lower-cases ADDRESS and strips surrounding <> and white space.
 * Returns a new string; "" for the null sender. */
char *tm_address_normalize (const char *address) G_GNUC_WARN_UNUSED_RESULT;

#endif
