/* config.c - read and check ticket-milter.conf once, at start.
 *
 * The file is a GKeyFile. Each fixed group ([milter], [store], [smtp],
 * [parser], [templates], [autoreply]) is described by one table of keys with
 * their type, default and the field they fill; [queue NAME], [team NAME] and
 * [hours NAME] groups repeat. Every key
 * not in a table and every group not known is an error, as is every value
 * that does not fit: the message names the file, the group and the key, and
 * the caller (the daemon) refuses to start. Nothing here is guessed.
 *
 * Defaults are applied first, so a missing file (with must_exist FALSE) and
 * an empty file give the same configuration: one queue "support" at
 * support@localhost.
 */
#include "config.h"

#include "language.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>

#define DEFAULT_SOCKET "unix:" RUNSTATEDIR "/ticket-milter/ticket-milter.sock"
#define DEFAULT_STORE LOCALSTATEDIR "/lib/ticket-milter/tickets.db"
#define DEFAULT_CONFIG SYSCONFDIR "/ticket-milter/ticket-milter.conf"
#ifndef TEMPLATEDIR
#define TEMPLATEDIR "/usr/share/ticket-milter/templates"
#endif

G_DEFINE_QUARK (tm-config-error-quark, tm_config_error)

typedef enum {
  KEY_STRING,          /* char *; empty value allowed where the key says so */
  KEY_OPTIONAL_STRING, /* char *; empty value means NULL */
  KEY_SIZE,            /* gsize with K/M/G suffix */
  KEY_UINT,            /* guint */
  KEY_OCTAL_MODE,      /* guint, octal, at most 0777 */
  KEY_ON_ERROR,        /* TmOnError */
  KEY_SYNCHRONOUS,     /* gboolean: full / normal */
  KEY_LIST,            /* char **, ';'-separated, entries trimmed */
  KEY_NETWORKS,        /* GPtrArray of GInetAddressMask* */
  KEY_DURATION,        /* guint seconds: 90, 90s, 15m, 4h, 2d, 1w */
  KEY_BOOLEAN,         /* gboolean: yes/no, true/false, on/off, 1/0 */
  KEY_STARTTLS,        /* TmSmtpStarttls: no / try / require */
} KeyType;

typedef struct {
  const char *name;
  KeyType type;
  gsize offset;        /* of the field in TmConfig */
} KeySpec;

typedef struct {
  const char *group;
  const KeySpec *keys;
} GroupSpec;

#define FIELD(f) G_STRUCT_OFFSET (TmConfig, f)

static const KeySpec milter_keys[] = {
  { "socket", KEY_STRING, FIELD (milter_socket) },
  { "on_error", KEY_ON_ERROR, FIELD (on_error) },
  { "user", KEY_OPTIONAL_STRING, FIELD (user) },
  { "socket_mode", KEY_OCTAL_MODE, FIELD (socket_mode) },
  { "pid_file", KEY_OPTIONAL_STRING, FIELD (pid_file) },
  { "max_message_size", KEY_SIZE, FIELD (max_message_size) },
  { "max_header_size", KEY_SIZE, FIELD (max_header_size) },
  { "trusted_networks", KEY_NETWORKS, FIELD (trusted_networks) },
  { NULL, 0, 0 },
};

static const KeySpec store_keys[] = {
  { "path", KEY_STRING, FIELD (store_path) },
  { "busy_timeout", KEY_UINT, FIELD (busy_timeout_ms) },
  { "synchronous", KEY_SYNCHRONOUS, FIELD (synchronous_full) },
  { "group_commit", KEY_UINT, FIELD (group_commit_max) },
  { NULL, 0, 0 },
};

static const KeySpec smtp_keys[] = {
  { "url", KEY_STRING, FIELD (smtp_url) },
  { "starttls", KEY_STARTTLS, FIELD (smtp_starttls) },
  { "verify_peer", KEY_BOOLEAN, FIELD (smtp_verify_peer) },
  { "ca_file", KEY_OPTIONAL_STRING, FIELD (smtp_ca_file) },
  { "username", KEY_OPTIONAL_STRING, FIELD (smtp_username) },
  { "password", KEY_OPTIONAL_STRING, FIELD (smtp_password) },
  { "helo_name", KEY_OPTIONAL_STRING, FIELD (smtp_helo_name) },
  { "connect_timeout", KEY_DURATION, FIELD (smtp_connect_timeout_s) },
  { "timeout", KEY_DURATION, FIELD (smtp_timeout_s) },
  { "retry_min", KEY_DURATION, FIELD (smtp_retry_min_s) },
  { "retry_max", KEY_DURATION, FIELD (smtp_retry_max_s) },
  { "give_up_after", KEY_DURATION, FIELD (smtp_give_up_after_s) },
  { "workers", KEY_UINT, FIELD (smtp_workers) },
  { NULL, 0, 0 },
};

static const KeySpec rules_keys[] = {
  { "file", KEY_OPTIONAL_STRING, FIELD (rules_file) },
  { NULL, 0, 0 },
};

static const KeySpec templates_keys[] = {
  { "dir", KEY_STRING, FIELD (template_dir) },
  { NULL, 0, 0 },
};

static const KeySpec autoreply_keys[] = {
  { "spam_header", KEY_OPTIONAL_STRING, FIELD (spam_header) },
  { "spam_value", KEY_STRING, FIELD (spam_value) },
  { "no_reply_senders", KEY_LIST, FIELD (no_reply_senders) },
  { NULL, 0, 0 },
};

static const KeySpec parser_keys[] = {
  { "fallback_charsets", KEY_LIST, FIELD (fallback_charsets) },
  { NULL, 0, 0 },
};

static const GroupSpec fixed_groups[] = {
  { "milter", milter_keys },
  { "store", store_keys },
  { "smtp", smtp_keys },
  { "parser", parser_keys },
  { "templates", templates_keys },
  { "rules", rules_keys },
  { "autoreply", autoreply_keys },
  { NULL, NULL },
};

static const char *const queue_keys[] = {
  "address", "tag_prefix", "team", "language", "display_name", "hours", "ack",
  "ack_followups", "ack_rate_limit", "first_response", "keep_address", "form_senders", NULL
};
static const char *const hours_keys[] = { "timezone", "days", "open", "holidays", NULL };
static const char *const team_keys[] = { "mailbox", "agents", NULL };

const char *
tm_config_default_path (void)
{
  return DEFAULT_CONFIG;
}

static void
queue_free (gpointer data)
{
  TmQueue *queue = data;
  g_free (queue->name);
  g_strfreev (queue->addresses);
  g_free (queue->tag_prefix);
  g_free (queue->team);
  g_free (queue->language);
  g_free (queue->display_name);
  g_free (queue->hours_name);
  g_strfreev (queue->form_senders);
  g_free (queue);
}

static void
team_free (gpointer data)
{
  TmTeam *team = data;
  g_free (team->name);
  g_free (team->mailbox);
  g_strfreev (team->agents);
  g_free (team);
}

static void
hours_free (gpointer data)
{
  TmHours *hours = data;
  tm_hours_free (&hours);
}

static GPtrArray *
networks_from_strings (const char *const *entries, GError **error)
{
  GPtrArray *networks = g_ptr_array_new_with_free_func (g_object_unref);
  for (; entries != NULL && *entries != NULL; entries++)
    {
      /* GIO reads the prefix length with strtoul and hands anything it
       * gets ("::1/812", "/-1", "/ 99999999999") to a GObject property
       * that only takes 0..128: a GLib-GObject warning on stderr before
       * its error. Only plain numbers up to 128 go to GIO.
       * Found by tests/fuzz/fuzz-config. */
      const char *slash = strchr (*entries, '/');
      if (slash != NULL && !g_ascii_string_to_unsigned (slash + 1, 10, 0, 128, NULL, NULL))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "\"%s\" is not a prefix length from 0 to 128", slash + 1);
          g_ptr_array_unref (networks);
          return NULL;
        }
      GInetAddressMask *mask = g_inet_address_mask_new_from_string (*entries, error);
      if (mask == NULL)
        {
          g_ptr_array_unref (networks);
          return NULL;
        }
      g_ptr_array_add (networks, mask);
    }
  return networks;
}

static TmQueue *
queue_new_default (const char *name)
{
  TmQueue *queue = g_new0 (TmQueue, 1);
  queue->name = g_strdup (name);
  queue->addresses = g_new0 (char *, 2);
  /* Lower-cased like every configured address: [queue Support] without an
   * address key must still find its mail (tm_config_queue_for_address
   * compares lower-cased). Found by tests/fuzz/fuzz-config. */
  g_autofree char *address = g_strdup_printf ("%s@localhost", name);
  queue->addresses[0] = g_ascii_strdown (address, -1);
  queue->tag_prefix = g_strdup ("Ticket");
  queue->language = g_strdup ("en");
  queue->ack = TRUE;
  queue->ack_followups = FALSE;
  queue->ack_rate_limit_s = 60 * 60;
  queue->first_response_s = 24 * 60 * 60;
  queue->form_senders = g_new0 (char *, 1);
  return queue;
}

TmConfig *
tm_config_new_default (void)
{
  static const char *const default_networks[] = { "127.0.0.1/32", "::1/128", NULL };
  TmConfig *config = g_new0 (TmConfig, 1);

  config->milter_socket = g_strdup (DEFAULT_SOCKET);
  config->on_error = TM_ON_ERROR_TEMPFAIL;
  config->user = g_strdup ("ticket-milter");
  config->socket_mode = 0660;
  config->max_message_size = 10 * 1024 * 1024;
  config->max_header_size = 1024 * 1024;
  config->trusted_networks = networks_from_strings (default_networks, NULL);
  g_assert (config->trusted_networks != NULL);

  config->store_path = g_strdup (DEFAULT_STORE);
  config->busy_timeout_ms = 5000;
  config->synchronous_full = TRUE;
  config->group_commit_max = 64;

  config->smtp_url = g_strdup ("smtp://127.0.0.1:25");
  config->smtp_starttls = TM_SMTP_STARTTLS_NO;
  config->smtp_verify_peer = TRUE;
  config->smtp_connect_timeout_s = 10;
  config->smtp_timeout_s = 60;
  config->smtp_retry_min_s = 60;
  config->smtp_retry_max_s = 60 * 60;
  config->smtp_give_up_after_s = 5 * 24 * 60 * 60;
  config->smtp_workers = 4;

  config->template_dir = g_strdup (TEMPLATEDIR);

  config->spam_header = g_strdup ("X-Spam-Flag");
  config->spam_value = g_strdup ("yes");
  config->no_reply_senders
    = g_strsplit ("noreply;no-reply;donotreply;do-not-reply;bounce;bounces", ";", -1);

  config->fallback_charsets = g_strsplit ("UTF-8;windows-1256", ";", -1);

  config->queues = g_ptr_array_new_with_free_func (queue_free);
  config->teams = g_ptr_array_new_with_free_func (team_free);
  config->hours = g_ptr_array_new_with_free_func (hours_free);
  config->rules = tm_rule_set_new ();
  return config;
}

void
tm_config_free (TmConfig **config_ptr)
{
  TmConfig *config = *config_ptr;
  if (config == NULL)
    return;
  g_free (config->source);
  g_free (config->milter_socket);
  g_free (config->user);
  g_free (config->pid_file);
  g_clear_pointer (&config->trusted_networks, g_ptr_array_unref);
  g_free (config->store_path);
  g_free (config->smtp_url);
  g_free (config->smtp_ca_file);
  g_free (config->smtp_username);
  g_free (config->smtp_password);
  g_free (config->smtp_helo_name);
  g_free (config->template_dir);
  tm_template_set_free (&config->templates);
  g_free (config->spam_header);
  g_free (config->spam_value);
  g_strfreev (config->no_reply_senders);
  g_strfreev (config->fallback_charsets);
  g_clear_pointer (&config->queues, g_ptr_array_unref);
  g_clear_pointer (&config->teams, g_ptr_array_unref);
  g_clear_pointer (&config->hours, g_ptr_array_unref);
  g_free (config->rules_file);
  tm_rule_set_free (&config->rules);
  g_free (config);
  *config_ptr = NULL;
}

char *
tm_address_normalize (const char *address)
{
  g_return_val_if_fail (address != NULL, NULL);
  g_autofree char *trimmed = g_strstrip (g_strdup (address));
  gsize length = strlen (trimmed);
  const char *start = trimmed;
  if (length >= 2 && trimmed[0] == '<' && trimmed[length - 1] == '>')
    {
      start = trimmed + 1;
      length -= 2;
    }
  g_autofree char *inner = g_strstrip (g_strndup (start, length));
  /* An envelope address is raw bytes from SMTP; what we keep of it (the
   * stored sender, a customer address when From: has none, which the
   * X-Ticket-Customer header the milter adds then shows) must be valid
   * UTF-8 without control characters. Found by tests/fuzz/fuzz-pipeline. */
  g_autofree char *valid = g_utf8_make_valid (inner, -1);
  GString *clean = g_string_sized_new (strlen (valid));
  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (g_unichar_iscntrl (c))
        g_string_append_unichar (clean, 0xFFFD);
      else
        g_string_append_len (clean, p, g_utf8_next_char (p) - p);
    }
  g_autofree char *text = g_string_free (clean, FALSE);
  return g_ascii_strdown (text, -1);
}

/* ---- reading values ---------------------------------------------------- */

static void
set_value_error (GError **error, const char *file, const char *group,
                 const char *key, const char *format, ...) G_GNUC_PRINTF (5, 6);

static void
set_value_error (GError **error, const char *file, const char *group,
                 const char *key, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_VALUE,
               "%s: [%s] %s: %s", file, group, key, what);
}

/* A ';'-separated list with entries trimmed and empty ones dropped. */
static char **
split_list (const char *value)
{
  g_auto (GStrv) parts = g_strsplit (value, ";", -1);
  GPtrArray *entries = g_ptr_array_new ();
  for (char **part = parts; *part != NULL; part++)
    {
      g_strstrip (*part);
      if (**part != '\0')
        g_ptr_array_add (entries, g_strdup (*part));
    }
  g_ptr_array_add (entries, NULL);
  return (char **) g_ptr_array_free (entries, FALSE);
}

static gboolean
parse_size (const char *value, gsize *out)
{
  char *end = NULL;
  errno = 0;
  if (!g_ascii_isdigit (value[0]))
    return FALSE;
  guint64 number = g_ascii_strtoull (value, &end, 10);
  if (errno != 0)
    return FALSE;
  guint64 multiplier = 1;
  switch (g_ascii_toupper (*end))
    {
    case '\0': break;
    case 'K': multiplier = 1024; end++; break;
    case 'M': multiplier = 1024 * 1024; end++; break;
    case 'G': multiplier = 1024 * 1024 * 1024; end++; break;
    default: return FALSE;
    }
  if (*end != '\0' || number == 0 || number > G_MAXSIZE / multiplier)
    return FALSE;
  *out = number * multiplier;
  return TRUE;
}

static gboolean
parse_uint (const char *value, guint base, guint64 max, guint64 *out)
{
  char *end = NULL;
  errno = 0;
  if (!g_ascii_isdigit (value[0]))
    return FALSE;
  guint64 number = g_ascii_strtoull (value, &end, base);
  if (errno != 0 || *end != '\0' || number > max)
    return FALSE;
  *out = number;
  return TRUE;
}

/* "90", "90s", "15m", "4h", "2d", "1w" -> seconds; at most G_MAXUINT. */
static gboolean
parse_duration (const char *value, guint *out)
{
  char *end = NULL;
  errno = 0;
  if (!g_ascii_isdigit (value[0]))
    return FALSE;
  guint64 number = g_ascii_strtoull (value, &end, 10);
  if (errno != 0)
    return FALSE;
  guint64 unit = 1;
  switch (*end)
    {
    case '\0': break;
    case 's': unit = 1; end++; break;
    case 'm': unit = 60; end++; break;
    case 'h': unit = 60 * 60; end++; break;
    case 'd': unit = 24 * 60 * 60; end++; break;
    case 'w': unit = 7 * 24 * 60 * 60; end++; break;
    default: return FALSE;
    }
  if (*end != '\0' || number > G_MAXUINT / unit)
    return FALSE;
  *out = (guint) (number * unit);
  return TRUE;
}

static gboolean
parse_boolean (const char *value, gboolean *out)
{
  static const char *const yes[] = { "yes", "true", "on", "1", NULL };
  static const char *const no[] = { "no", "false", "off", "0", NULL };
  g_autofree char *lower = g_ascii_strdown (value, -1);
  if (g_strv_contains (yes, lower))
    *out = TRUE;
  else if (g_strv_contains (no, lower))
    *out = FALSE;
  else
    return FALSE;
  return TRUE;
}

static gboolean
read_fixed_key (TmConfig *config, const char *file, const char *group,
                const KeySpec *spec, const char *value, GError **error)
{
  gpointer field = G_STRUCT_MEMBER_P (config, spec->offset);
  guint64 number = 0;

  switch (spec->type)
    {
    case KEY_STRING:
      if (*value == '\0')
        {
          set_value_error (error, file, group, spec->name, "must not be empty");
          return FALSE;
        }
      g_free (*(char **) field);
      *(char **) field = g_strdup (value);
      return TRUE;
    case KEY_OPTIONAL_STRING:
      g_free (*(char **) field);
      *(char **) field = *value == '\0' ? NULL : g_strdup (value);
      return TRUE;
    case KEY_SIZE:
      if (!parse_size (value, (gsize *) field))
        {
          set_value_error (error, file, group, spec->name,
                           "\"%s\" is not a size (a positive number with an optional K, M or G)",
                           value);
          return FALSE;
        }
      return TRUE;
    case KEY_UINT:
      if (!parse_uint (value, 10, G_MAXUINT, &number))
        {
          set_value_error (error, file, group, spec->name,
                           "\"%s\" is not a whole number", value);
          return FALSE;
        }
      *(guint *) field = (guint) number;
      return TRUE;
    case KEY_OCTAL_MODE:
      if (!parse_uint (value, 8, 0777, &number))
        {
          set_value_error (error, file, group, spec->name,
                           "\"%s\" is not an octal file mode such as 0660", value);
          return FALSE;
        }
      *(guint *) field = (guint) number;
      return TRUE;
    case KEY_ON_ERROR:
      if (g_ascii_strcasecmp (value, "tempfail") == 0)
        *(TmOnError *) field = TM_ON_ERROR_TEMPFAIL;
      else if (g_ascii_strcasecmp (value, "accept") == 0)
        *(TmOnError *) field = TM_ON_ERROR_ACCEPT;
      else
        {
          set_value_error (error, file, group, spec->name,
                           "\"%s\" is neither tempfail nor accept", value);
          return FALSE;
        }
      return TRUE;
    case KEY_SYNCHRONOUS:
      if (g_ascii_strcasecmp (value, "full") == 0)
        *(gboolean *) field = TRUE;
      else if (g_ascii_strcasecmp (value, "normal") == 0)
        *(gboolean *) field = FALSE;
      else
        {
          set_value_error (error, file, group, spec->name,
                           "\"%s\" is neither full nor normal", value);
          return FALSE;
        }
      return TRUE;
    case KEY_LIST:
      {
        char **list = split_list (value);
        if (list[0] == NULL)
          {
            g_strfreev (list);
            set_value_error (error, file, group, spec->name, "must name at least one entry");
            return FALSE;
          }
        g_strfreev (*(char ***) field);
        *(char ***) field = list;
        return TRUE;
      }
    case KEY_DURATION:
      if (!parse_duration (value, (guint *) field))
        {
          set_value_error (error, file, group, spec->name,
                           "\"%s\" is not a duration such as 90s, 15m, 4h or 2d", value);
          return FALSE;
        }
      return TRUE;
    case KEY_BOOLEAN:
      if (!parse_boolean (value, (gboolean *) field))
        {
          set_value_error (error, file, group, spec->name, "\"%s\" is neither yes nor no", value);
          return FALSE;
        }
      return TRUE;
    case KEY_STARTTLS:
      if (g_ascii_strcasecmp (value, "no") == 0)
        *(TmSmtpStarttls *) field = TM_SMTP_STARTTLS_NO;
      else if (g_ascii_strcasecmp (value, "try") == 0)
        *(TmSmtpStarttls *) field = TM_SMTP_STARTTLS_TRY;
      else if (g_ascii_strcasecmp (value, "require") == 0)
        *(TmSmtpStarttls *) field = TM_SMTP_STARTTLS_REQUIRE;
      else
        {
          set_value_error (error, file, group, spec->name,
                           "\"%s\" is none of no, try and require", value);
          return FALSE;
        }
      return TRUE;
    case KEY_NETWORKS:
      {
        g_auto (GStrv) list = split_list (value);
        g_autoptr (GError) local_error = NULL;
        GPtrArray *networks = networks_from_strings ((const char *const *) list, &local_error);
        if (networks == NULL)
          {
            set_value_error (error, file, group, spec->name, "%s", local_error->message);
            return FALSE;
          }
        g_ptr_array_unref (*(GPtrArray **) field);
        *(GPtrArray **) field = networks;
        return TRUE;
      }
    }
  g_assert_not_reached ();
}

static const GroupSpec *
find_fixed_group (const char *group)
{
  for (const GroupSpec *spec = fixed_groups; spec->group != NULL; spec++)
    if (strcmp (spec->group, group) == 0)
      return spec;
  return NULL;
}

static gboolean
read_fixed_group (TmConfig *config, GKeyFile *keyfile, const char *file,
                  const GroupSpec *group_spec, GError **error)
{
  g_auto (GStrv) keys = g_key_file_get_keys (keyfile, group_spec->group, NULL, NULL);
  for (char **key = keys; key != NULL && *key != NULL; key++)
    {
      const KeySpec *spec = group_spec->keys;
      while (spec->name != NULL && strcmp (spec->name, *key) != 0)
        spec++;
      if (spec->name == NULL)
        {
          g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_UNKNOWN,
                       "%s: [%s] %s: unknown key", file, group_spec->group, *key);
          return FALSE;
        }
      g_autofree char *value = g_key_file_get_value (keyfile, group_spec->group, *key, NULL);
      g_strstrip (value);
      if (!read_fixed_key (config, file, group_spec->group, spec, value, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
check_known_keys (GKeyFile *keyfile, const char *file, const char *group,
                  const char *const *known, GError **error)
{
  g_auto (GStrv) keys = g_key_file_get_keys (keyfile, group, NULL, NULL);
  for (char **key = keys; key != NULL && *key != NULL; key++)
    if (!g_strv_contains (known, *key))
      {
        g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_UNKNOWN,
                     "%s: [%s] %s: unknown key", file, group, *key);
        return FALSE;
      }
  return TRUE;
}

/* The value of KEY in GROUP, trimmed, or NULL when the key is absent. */
static char *
get_trimmed (GKeyFile *keyfile, const char *group, const char *key)
{
  char *value = g_key_file_get_value (keyfile, group, key, NULL);
  return value != NULL ? g_strstrip (value) : NULL;
}

/* A plausible mail address: local@domain, no white space or brackets. */
static gboolean
address_is_plausible (const char *address)
{
  const char *at = strrchr (address, '@');
  if (at == NULL || at == address || at[1] == '\0')
    return FALSE;
  for (const char *c = address; *c != '\0'; c++)
    if (g_ascii_isspace (*c) || *c == '<' || *c == '>' || *c == ',' || (guchar) *c < 0x20)
      return FALSE;
  return TRUE;
}

static gboolean
read_address_list (const char *value, const char *file, const char *group,
                   const char *key, gboolean allow_empty, char ***out,
                   GError **error)
{
  g_auto (GStrv) list = split_list (value);
  if (list[0] == NULL && !allow_empty)
    {
      set_value_error (error, file, group, key, "must name at least one address");
      return FALSE;
    }
  for (char **entry = list; *entry != NULL; entry++)
    {
      char *normalized = tm_address_normalize (*entry);
      g_free (*entry);
      *entry = normalized;
      if (!address_is_plausible (*entry))
        {
          set_value_error (error, file, group, key, "\"%s\" is not a mail address", *entry);
          return FALSE;
        }
    }
  *out = g_steal_pointer (&list);
  return TRUE;
}

/* A name after "queue " or "team ": letters, digits, '-', '_' and '.'. */
static gboolean
name_is_valid (const char *name)
{
  if (*name == '\0')
    return FALSE;
  for (const char *c = name; *c != '\0'; c++)
    if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_' && *c != '.')
      return FALSE;
  return TRUE;
}

/* A tag prefix sits inside "[PREFIX#N]": no brackets, '#' or white space. */
static gboolean
tag_prefix_is_valid (const char *prefix)
{
  if (*prefix == '\0' || strlen (prefix) > 32)
    return FALSE;
  for (const char *c = prefix; *c != '\0'; c++)
    if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_' && *c != '.')
      return FALSE;
  return TRUE;
}

static TmQueue *
read_queue (GKeyFile *keyfile, const char *file, const char *group,
            const char *name, GError **error)
{
  if (!check_known_keys (keyfile, file, group, queue_keys, error))
    return NULL;
  TmQueue *queue = queue_new_default (name);
  g_autofree char *address = get_trimmed (keyfile, group, "address");
  g_autofree char *prefix = get_trimmed (keyfile, group, "tag_prefix");
  g_autofree char *team = get_trimmed (keyfile, group, "team");
  g_autofree char *language = get_trimmed (keyfile, group, "language");
  g_autofree char *display_name = get_trimmed (keyfile, group, "display_name");
  g_autofree char *hours = get_trimmed (keyfile, group, "hours");
  g_autofree char *form_senders = get_trimmed (keyfile, group, "form_senders");
  static const struct { const char *key; gsize offset; } booleans[] = {
    { "ack", G_STRUCT_OFFSET (TmQueue, ack) },
    { "ack_followups", G_STRUCT_OFFSET (TmQueue, ack_followups) },
    { "keep_address", G_STRUCT_OFFSET (TmQueue, keep_address) },
  };
  static const struct { const char *key; gsize offset; } durations[] = {
    { "ack_rate_limit", G_STRUCT_OFFSET (TmQueue, ack_rate_limit_s) },
    { "first_response", G_STRUCT_OFFSET (TmQueue, first_response_s) },
  };
  for (guint i = 0; i < G_N_ELEMENTS (booleans); i++)
    {
      g_autofree char *value = get_trimmed (keyfile, group, booleans[i].key);
      if (value != NULL
          && !parse_boolean (value, G_STRUCT_MEMBER_P (queue, booleans[i].offset)))
        {
          set_value_error (error, file, group, booleans[i].key,
                           "\"%s\" is neither yes nor no", value);
          goto fail;
        }
    }
  for (guint i = 0; i < G_N_ELEMENTS (durations); i++)
    {
      g_autofree char *value = get_trimmed (keyfile, group, durations[i].key);
      if (value != NULL
          && !parse_duration (value, G_STRUCT_MEMBER_P (queue, durations[i].offset)))
        {
          set_value_error (error, file, group, durations[i].key,
                           "\"%s\" is not a duration such as 90s, 15m, 4h or 2d", value);
          goto fail;
        }
    }
  if (queue->first_response_s == 0)
    {
      set_value_error (error, file, group, "first_response", "must be more than zero");
      goto fail;
    }
  if (display_name != NULL && *display_name != '\0')
    {
      for (const char *c = display_name; *c != '\0'; c++)
        if ((guchar) *c < 0x20 || *c == 0x7f)
          {
            set_value_error (error, file, group, "display_name", "must be one line of text");
            goto fail;
          }
      queue->display_name = g_steal_pointer (&display_name);
    }
  if (hours != NULL && *hours != '\0')
    queue->hours_name = g_steal_pointer (&hours);
  if (form_senders != NULL)
    {
      g_strfreev (queue->form_senders);
      queue->form_senders = NULL;
      if (!read_address_list (form_senders, file, group, "form_senders", TRUE,
                              &queue->form_senders, error))
        goto fail;
    }

  if (address != NULL)
    {
      g_strfreev (queue->addresses);
      queue->addresses = NULL;
      if (!read_address_list (address, file, group, "address", FALSE,
                              &queue->addresses, error))
        goto fail;
    }
  if (prefix != NULL)
    {
      if (!tag_prefix_is_valid (prefix))
        {
          set_value_error (error, file, group, "tag_prefix",
                           "\"%s\" must be 1 to 32 letters, digits, '-', '_' or '.'", prefix);
          goto fail;
        }
      g_free (queue->tag_prefix);
      queue->tag_prefix = g_steal_pointer (&prefix);
    }
  if (team != NULL && *team != '\0')
    queue->team = g_steal_pointer (&team);
  if (language != NULL)
    {
      if (!tm_language_tag_is_valid (language))
        {
          set_value_error (error, file, group, "language",
                           "\"%s\" is not a language tag such as en, ar or fa", language);
          goto fail;
        }
      g_free (queue->language);
      queue->language = g_ascii_strdown (language, -1);
    }
  return queue;

fail:
  queue_free (queue);
  return NULL;
}

static TmTeam *
read_team (GKeyFile *keyfile, const char *file, const char *group,
           const char *name, GError **error)
{
  if (!check_known_keys (keyfile, file, group, team_keys, error))
    return NULL;
  g_autofree char *mailbox = get_trimmed (keyfile, group, "mailbox");
  g_autofree char *agents = get_trimmed (keyfile, group, "agents");
  if (mailbox == NULL || *mailbox == '\0')
    {
      set_value_error (error, file, group, "mailbox", "is required: the address that receives the team's tickets");
      return NULL;
    }
  TmTeam *team = g_new0 (TmTeam, 1);
  team->name = g_strdup (name);
  team->mailbox = tm_address_normalize (mailbox);
  if (!address_is_plausible (team->mailbox))
    {
      set_value_error (error, file, group, "mailbox", "\"%s\" is not a mail address", mailbox);
      team_free (team);
      return NULL;
    }
  if (!read_address_list (agents != NULL ? agents : "", file, group, "agents", TRUE,
                          &team->agents, error))
    {
      team_free (team);
      return NULL;
    }
  return team;
}

/* Checks that hold across groups: unique queue addresses, known teams. */
static gboolean
check_references (TmConfig *config, const char *file, GError **error)
{
  g_autoptr (GHashTable) owners = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < config->queues->len; i++)
    {
      TmQueue *queue = g_ptr_array_index (config->queues, i);
      g_autofree char *group = g_strdup_printf ("queue %s", queue->name);
      for (char **address = queue->addresses; *address != NULL; address++)
        {
          const char *owner = g_hash_table_lookup (owners, *address);
          if (owner != NULL)
            {
              set_value_error (error, file, group, "address",
                               "%s already belongs to queue %s", *address, owner);
              return FALSE;
            }
          g_hash_table_insert (owners, *address, queue->name);
        }
      if (queue->team != NULL && tm_config_team_by_name (config, queue->team) == NULL)
        {
          set_value_error (error, file, group, "team",
                           "no [team %s] group is defined", queue->team);
          return FALSE;
        }
      if (queue->hours_name != NULL)
        {
          queue->hours = tm_config_hours_by_name (config, queue->hours_name);
          if (queue->hours == NULL)
            {
              set_value_error (error, file, group, "hours",
                               "no [hours %s] group is defined", queue->hours_name);
              return FALSE;
            }
        }
    }
  return TRUE;
}

/* Loads the templates and checks that every queue that acknowledges has the
 * ones it will use in its default language; other languages are optional
 * (the language chooser only picks a language that has the template). */
static gboolean
load_templates (TmConfig *config, const char *file, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  config->templates = tm_template_set_load (config->template_dir, &local_error);
  if (config->templates == NULL)
    {
      g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_VALUE, "%s: [templates] dir: %s",
                   file, local_error->message);
      return FALSE;
    }
  for (guint i = 0; i < config->queues->len; i++)
    {
      const TmQueue *queue = g_ptr_array_index (config->queues, i);
      if (!queue->ack)
        continue;
      const char *needed[] = { "ack", queue->hours != NULL ? "after-hours" : NULL };
      for (guint n = 0; n < G_N_ELEMENTS (needed) && needed[n] != NULL; n++)
        if (tm_template_set_lookup (config->templates, queue->language, needed[n]) == NULL)
          {
            g_autofree char *group = g_strdup_printf ("queue %s", queue->name);
            set_value_error (error, file, group, "language",
                             "there is no template %s/%s/%s.txt (needed to acknowledge mail;"
                             " set ack = no to send none)",
                             config->template_dir, queue->language, needed[n]);
            return FALSE;
          }
    }
  return TRUE;
}

static gboolean read_keyfile (const char *path, GKeyFile *keyfile, GError **error);

static gboolean
team_exists (const char *team, gpointer data)
{
  return tm_config_team_by_name (data, team) != NULL;
}

/* The rules of the main file, then those of [rules] file. */
static gboolean
load_rules (TmConfig *config, GKeyFile *keyfile, const char *file, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  if (!tm_rule_set_add_keyfile (config->rules, keyfile, file, team_exists, config, &local_error))
    {
      g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_VALUE, "%s", local_error->message);
      return FALSE;
    }
  if (config->rules_file == NULL)
    return TRUE;
  g_autoptr (GKeyFile) rules = g_key_file_new ();
  if (!read_keyfile (config->rules_file, rules, &local_error))
    {
      if (local_error->domain == G_FILE_ERROR)
        g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_READ, "%s: [rules] file: %s", file,
                     local_error->message);
      else
        g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  g_auto (GStrv) groups = g_key_file_get_groups (rules, NULL);
  for (char **group = groups; *group != NULL; group++)
    if (!g_str_has_prefix (*group, "rule "))
      {
        g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_UNKNOWN,
                     "%s: [%s]: a rules file holds only [rule NAME] groups",
                     config->rules_file, *group);
        return FALSE;
      }
  if (!tm_rule_set_add_keyfile (config->rules, rules, config->rules_file, team_exists, config,
                                &local_error))
    {
      g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_VALUE, "%s", local_error->message);
      return FALSE;
    }
  return TRUE;
}

/* What every loaded configuration goes through, from a file or not. */
static gboolean
finish_loading (TmConfig *config, const char *file, GError **error)
{
  if (config->queues->len == 0)
    g_ptr_array_add (config->queues, queue_new_default ("support"));
  if (config->smtp_workers < 1 || config->smtp_workers > 64)
    {
      set_value_error (error, file, "smtp", "workers", "%u is not between 1 and 64",
                       config->smtp_workers);
      return FALSE;
    }
  if (config->group_commit_max < 1 || config->group_commit_max > 1000)
    {
      set_value_error (error, file, "store", "group_commit", "%u is not between 1 and 1000",
                       config->group_commit_max);
      return FALSE;
    }
  for (char **sender = config->no_reply_senders; *sender != NULL; sender++)
    {
      char *lower = g_ascii_strdown (*sender, -1);
      g_free (*sender);
      *sender = lower;
    }
  return check_references (config, file, error) && load_templates (config, file, error);
}

/* GKeyFile's parse errors quote the line but do not number it; an admin
 * wants the number. Returns the first line that is neither blank, a comment,
 * a group header nor a key = value pair (or a stray byte such as NUL), or 1. */
static guint
first_bad_line (const char *text)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *line = lines[i];
      while (g_ascii_isspace (*line))
        line++;
      if (*line == '\0' || *line == '#')
        continue;
      if (*line == '[' ? strchr (line, ']') == NULL : strchr (line, '=') == NULL)
        return i + 1;
    }
  return 1;
}

/* GKeyFile quietly merges a group written twice and keeps the last of a
 * key given twice: a second [queue support] or a second "address =" would
 * change the first without a word. Both are errors here, with the lines. */
static gboolean
check_nothing_twice (const char *path, const char *text, GKeyFile *keyfile, GError **error)
{
  g_autoptr (GHashTable) first_line = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      /* The same reading as GKeyFile's: from '[' to the last ']'. */
      const char *line = lines[i];
      while (g_ascii_isspace (*line))
        line++;
      const char *close = strrchr (line, ']');
      if (*line != '[' || close == NULL)
        continue;
      char *group = g_strndup (line + 1, (gsize) (close - line - 1));
      guint first = GPOINTER_TO_UINT (g_hash_table_lookup (first_line, group));
      if (first != 0)
        {
          g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_SYNTAX,
                       "%s: line %u: [%s] given twice (first on line %u)", path, i + 1, group,
                       first);
          g_free (group);
          return FALSE;
        }
      g_hash_table_insert (first_line, group, GUINT_TO_POINTER (i + 1));
    }
  g_auto (GStrv) groups = g_key_file_get_groups (keyfile, NULL);
  for (char **group = groups; *group != NULL; group++)
    {
      g_auto (GStrv) keys = g_key_file_get_keys (keyfile, *group, NULL, NULL);
      for (char **key = keys; key != NULL && *key != NULL; key++)
        for (char **earlier = keys; earlier < key; earlier++)
          if (strcmp (*earlier, *key) == 0)
            {
              g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_SYNTAX,
                           "%s: [%s] %s: given twice", path, *group, *key);
              return FALSE;
            }
    }
  return TRUE;
}

/* Reads PATH into KEYFILE. A file that cannot be read gives its G_FILE_ERROR
 * as it is; a file that is not valid UTF-8 or not a key file gives
 * TM_CONFIG_ERROR_SYNTAX, "PATH: line N: what". */
static gboolean
read_keyfile (const char *path, GKeyFile *keyfile, GError **error)
{
  g_autofree char *text = NULL;
  gsize length = 0;
  if (!g_file_get_contents (path, &text, &length, error))
    return FALSE;
  const char *invalid = NULL;
  if (!g_utf8_validate (text, (gssize) length, &invalid))
    {
      guint line = 1;
      for (const char *c = text; c < invalid; c++)
        line += *c == '\n';
      g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_SYNTAX,
                   "%s: line %u: not valid UTF-8 (or a NUL byte)", path, line);
      return FALSE;
    }
  g_autoptr (GError) local_error = NULL;
  if (!g_key_file_load_from_data (keyfile, text, length, G_KEY_FILE_NONE, &local_error))
    {
      g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_SYNTAX, "%s: line %u: %s", path,
                   first_bad_line (text), local_error->message);
      return FALSE;
    }
  return check_nothing_twice (path, text, keyfile, error);
}

TmConfig *
tm_config_load (const char *path, gboolean must_exist, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_autoptr (GKeyFile) keyfile = g_key_file_new ();
  g_autoptr (GError) local_error = NULL;
  TmConfig *config = tm_config_new_default ();

  if (!read_keyfile (path, keyfile, &local_error))
    {
      if (!must_exist && g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        {
          if (!finish_loading (config, "(built-in defaults)", error))
            tm_config_free (&config);
          return config;
        }
      if (local_error->domain == G_FILE_ERROR)
        g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_READ, "%s", local_error->message);
      else
        g_propagate_error (error, g_steal_pointer (&local_error));
      tm_config_free (&config);
      return NULL;
    }
  config->source = g_strdup (path);

  g_auto (GStrv) groups = g_key_file_get_groups (keyfile, NULL);
  /* Business hours and teams first, so that a queue may name them before
   * they are defined. */
  for (char **group = groups; *group != NULL; group++)
    {
      if (!g_str_has_prefix (*group, "hours "))
        continue;
      const char *name = *group + strlen ("hours ");
      if (!name_is_valid (name) || tm_config_hours_by_name (config, name) != NULL)
        {
          g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_VALUE,
                       "%s: [%s]: hours names are unique and made of letters, digits, '-', '_' and '.'",
                       path, *group);
          goto fail;
        }
      if (!check_known_keys (keyfile, path, *group, hours_keys, error))
        goto fail;
      g_autofree char *timezone = get_trimmed (keyfile, *group, "timezone");
      g_autofree char *days = get_trimmed (keyfile, *group, "days");
      g_autofree char *open = get_trimmed (keyfile, *group, "open");
      g_autofree char *holidays = get_trimmed (keyfile, *group, "holidays");
      g_autoptr (GError) hours_error = NULL;
      TmHours *hours = tm_hours_new (name, timezone, days, open, holidays, &hours_error);
      if (hours == NULL)
        {
          /* The message starts with the key: "days: ...". */
          g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_VALUE, "%s: [%s] %s",
                       path, *group, hours_error->message);
          goto fail;
        }
      g_ptr_array_add (config->hours, hours);
    }
  for (char **group = groups; *group != NULL; group++)
    {
      if (!g_str_has_prefix (*group, "team "))
        continue;
      const char *name = *group + strlen ("team ");
      if (!name_is_valid (name) || tm_config_team_by_name (config, name) != NULL)
        {
          g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_VALUE,
                       "%s: [%s]: team names are unique and made of letters, digits, '-', '_' and '.'",
                       path, *group);
          goto fail;
        }
      TmTeam *team = read_team (keyfile, path, *group, name, error);
      if (team == NULL)
        goto fail;
      g_ptr_array_add (config->teams, team);
    }
  for (char **group = groups; *group != NULL; group++)
    {
      const GroupSpec *fixed = find_fixed_group (*group);
      if (fixed != NULL)
        {
          if (!read_fixed_group (config, keyfile, path, fixed, error))
            goto fail;
        }
      else if (g_str_has_prefix (*group, "queue "))
        {
          const char *name = *group + strlen ("queue ");
          if (!name_is_valid (name) || tm_config_queue_by_name (config, name) != NULL)
            {
              g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_VALUE,
                           "%s: [%s]: queue names are unique and made of letters, digits, '-', '_' and '.'",
                           path, *group);
              goto fail;
            }
          TmQueue *queue = read_queue (keyfile, path, *group, name, error);
          if (queue == NULL)
            goto fail;
          g_ptr_array_add (config->queues, queue);
        }
      else if (!g_str_has_prefix (*group, "team ") && !g_str_has_prefix (*group, "hours ")
               && !g_str_has_prefix (*group, "rule "))
        {
          g_set_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_UNKNOWN,
                       "%s: [%s]: unknown group (known: milter, store, smtp, parser, templates,"
                       " autoreply, rules, queue NAME, team NAME, hours NAME, rule NAME)",
                       path, *group);
          goto fail;
        }
    }
  /* Rules last: they name teams. */
  if (!load_rules (config, keyfile, path, error))
    goto fail;
  if (!finish_loading (config, path, error))
    goto fail;
  return config;

fail:
  tm_config_free (&config);
  return NULL;
}

/* ---- lookups ----------------------------------------------------------- */

const TmQueue *
tm_config_queue_for_address (const TmConfig *config, const char *address)
{
  g_return_val_if_fail (config != NULL && address != NULL, NULL);
  g_autofree char *normalized = tm_address_normalize (address);
  for (guint i = 0; i < config->queues->len; i++)
    {
      const TmQueue *queue = g_ptr_array_index (config->queues, i);
      if (g_strv_contains ((const char *const *) queue->addresses, normalized))
        return queue;
    }
  return NULL;
}

const TmQueue *
tm_config_queue_by_name (const TmConfig *config, const char *name)
{
  for (guint i = 0; i < config->queues->len; i++)
    {
      const TmQueue *queue = g_ptr_array_index (config->queues, i);
      if (strcmp (queue->name, name) == 0)
        return queue;
    }
  return NULL;
}

const TmTeam *
tm_config_team_by_name (const TmConfig *config, const char *name)
{
  for (guint i = 0; i < config->teams->len; i++)
    {
      const TmTeam *team = g_ptr_array_index (config->teams, i);
      if (strcmp (team->name, name) == 0)
        return team;
    }
  return NULL;
}

const TmHours *
tm_config_hours_by_name (const TmConfig *config, const char *name)
{
  for (guint i = 0; i < config->hours->len; i++)
    {
      const TmHours *hours = g_ptr_array_index (config->hours, i);
      if (strcmp (tm_hours_name (hours), name) == 0)
        return hours;
    }
  return NULL;
}

gboolean
tm_config_is_agent (const TmConfig *config, const char *address)
{
  g_return_val_if_fail (config != NULL && address != NULL, FALSE);
  g_autofree char *normalized = tm_address_normalize (address);
  for (guint i = 0; i < config->teams->len; i++)
    {
      const TmTeam *team = g_ptr_array_index (config->teams, i);
      if (g_strv_contains ((const char *const *) team->agents, normalized))
        return TRUE;
    }
  return FALSE;
}

gboolean
tm_config_is_trusted_client (const TmConfig *config, const char *client_addr)
{
  g_return_val_if_fail (config != NULL, FALSE);
  if (client_addr == NULL || *client_addr == '\0')
    return FALSE;
  /* Postfix gives IPv6 clients as "IPv6:2001:db8::1" in some macros. */
  if (g_ascii_strncasecmp (client_addr, "IPv6:", 5) == 0)
    client_addr += 5;
  g_autoptr (GInetAddress) address = g_inet_address_new_from_string (client_addr);
  if (address == NULL)
    return FALSE;
  for (guint i = 0; i < config->trusted_networks->len; i++)
    {
      GInetAddressMask *mask = g_ptr_array_index (config->trusted_networks, i);
      if (g_inet_address_mask_get_family (mask) == g_inet_address_get_family (address)
          && g_inet_address_mask_matches (mask, address))
        return TRUE;
    }
  return FALSE;
}
