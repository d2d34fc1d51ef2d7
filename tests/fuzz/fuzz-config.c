/* fuzz-config.c - libFuzzer target: the configuration loader (config.c),
 * with its [rule NAME] groups (rules.c), [hours NAME] groups (hours.c) and
 * the templates it loads.
 *
 * The input is the text of ticket-milter.conf. When it holds a line "%%",
 * what follows that line is written to a rules file, which the first part
 * names as "[rules] file = fuzz-rules.conf" (the seed corpus has examples;
 * the name is replaced by the file's real path). Without its own
 * [templates] group the text gets one naming the shipped templates
 * ($TM_TEMPLATE_DIR or the source tree), as tests/unit's
 * tm_test_config_text() does. Both files are written to a private
 * directory (tmpfs when there is one).
 *
 * Inputs whose [rules] file is any other path with a '/' (or an existing
 * file that is not a regular one), or whose [templates] dir climbs with
 * "..", are skipped: those paths are the admin's choice, and /dev/zero or a
 * FIFO would only hang the fuzzer.
 *
 * A load must either fail with a TM_CONFIG_ERROR whose message is one line
 * of valid UTF-8, or give a configuration that keeps the promises of
 * config.h: at least one queue, every queue with lower-cased addresses that
 * find it, its team and hours resolved, and an "ack" template in its
 * language when it acknowledges. The loaded configuration is then used as
 * the daemon would: lookups, trusted networks, the business hours at a
 * series of instants (is_open, next_open, add_open_time, format_local) and
 * the rules on a few fixed mails.
 */
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "hours.h"
#include "message.h"
#include "rules.h"
#include "template.h"
#include "fuzz-common.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

static char *config_path;
static char *rules_path;
static GPtrArray *sample_messages;

static const char *const sample_mails[] = {
  "From: \"Fatima\" <fatima@example.net>\nTo: support@example.com\n"
  "Subject: =?UTF-8?B?2YHYp9iq2YjYsdipINi52KfYrNmE?= invoice refund\n"
  "X-Priority: 1 (Highest)\nContent-Language: ar\n\n"
  "\xd9\x84\xd9\x85 \xd8\xaa\xd8\xb5\xd9\x84 \xd8\xa7\xd9\x84\xd9\x81\xd8\xa7\xd8\xaa\xd9\x88"
  "\xd8\xb1\xd8\xa9. URGENT, please refund my credit card.\n",
  "From: Someone <a.b@example.org>\nTo: billing@example.com\nCc: c@example.org\n"
  "Subject: Re: [Ticket#12] \xd8\xb5\xd9\x88\xd8\xb1\xd8\xaa\xe2\x80\x8c\xd8\xad\xd8\xb3\xd8\xa7"
  "\xd8\xa8 \xd9\x81\xd9\x88\xd8\xb1\xdb\x8c\nMIME-Version: 1.0\n"
  "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
  "\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae\xd9\x88\xd8\xa7\xd9\x87\xd9\x85\n--b\n"
  "Content-Type: application/pdf; name=\"invoice-42.pdf\"\n\nx\n--b--\n",
  "Subject: \n\n",
};

static void
remove_files (void)
{
  if (config_path != NULL)
    g_unlink (config_path);
  if (rules_path != NULL)
    g_unlink (rules_path);
  g_clear_pointer (&config_path, g_free);
  g_clear_pointer (&rules_path, g_free);
  g_clear_pointer (&sample_messages, g_ptr_array_unref);
}

static void
message_free (gpointer data)
{
  TmMessage *msg = data;
  tm_message_free (&msg);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_glib ();
  if (g_getenv ("TM_TEMPLATE_DIR") == NULL)
    g_setenv ("TM_TEMPLATE_DIR", TM_FUZZ_SRCDIR "/templates", TRUE);
  if (!g_path_is_absolute (fuzz_template_dir ()))
    {
      g_autofree char *absolute = g_canonicalize_filename (fuzz_template_dir (), NULL);
      g_setenv ("TM_TEMPLATE_DIR", absolute, TRUE);
    }
  const char *scratch = fuzz_scratch_dir ();
  config_path = g_build_filename (scratch, "ticket-milter.conf", NULL);
  rules_path = g_build_filename (scratch, "fuzz-rules.conf", NULL);
  sample_messages = g_ptr_array_new_with_free_func (message_free);
  for (guint i = 0; i < G_N_ELEMENTS (sample_mails); i++)
    g_ptr_array_add (sample_messages,
                     tm_message_parse (sample_mails[i], strlen (sample_mails[i]), NULL));
  atexit (remove_files);
  return 0;
}

/* A rules file the loader may read: ours, or a plain name that is no
 * device or FIFO (the loader reads it from the working directory). */
static gboolean
rules_file_is_safe (const char *path)
{
  if (path == NULL)
    return TRUE;
  g_autofree char *trimmed = g_strstrip (g_strdup (path));
  if (strcmp (trimmed, rules_path) == 0)
    return TRUE;
  if (strchr (trimmed, '/') != NULL || strcmp (trimmed, "..") == 0 || *trimmed == '~')
    return FALSE;
  return !g_file_test (trimmed, G_FILE_TEST_EXISTS)
         || g_file_test (trimmed, G_FILE_TEST_IS_REGULAR);
}

/* What the loader would follow, read the way it reads the file. */
static gboolean
paths_are_safe (const char *text, gsize length, gboolean *has_templates)
{
  g_autoptr (GKeyFile) keyfile = g_key_file_new ();
  *has_templates = FALSE;
  if (!g_key_file_load_from_data (keyfile, text, length, G_KEY_FILE_NONE, NULL))
    return TRUE;  /* the loader refuses it too */
  *has_templates = g_key_file_has_group (keyfile, "templates");
  g_autofree char *rules = g_key_file_get_value (keyfile, "rules", "file", NULL);
  g_autofree char *templates = g_key_file_get_value (keyfile, "templates", "dir", NULL);
  /* A template directory is only searched for LANG/NAME.txt files, so an
   * absolute one is harmless; a rules file is read whole, whatever it is. */
  return rules_file_is_safe (rules) && !(templates != NULL && strstr (templates, "..") != NULL);
}

static void
check_hours (const TmHours *hours)
{
  fuzz_check_text ("hours name", tm_hours_name (hours));
  fuzz_check_text ("hours timezone", tm_hours_timezone (hours));
  fuzz_check_text ("hours open", tm_hours_open_text (hours));
  /* 2026-11-23 06:00 UTC, then steps over a year, and the edges. */
  static const gint64 instants[] = {
    G_GINT64_CONSTANT (1795413600), G_GINT64_CONSTANT (1795413600) + 3 * 3600,
    G_GINT64_CONSTANT (1795413600) + 4 * 86400 + 7 * 3600,
    G_GINT64_CONSTANT (1795413600) + 200 * 86400, 0, G_GINT64_CONSTANT (253402300000),
  };
  for (guint i = 0; i < G_N_ELEMENTS (instants); i++)
    {
      gint64 now = instants[i];
      gboolean open = tm_hours_is_open (hours, now);
      gint64 next = tm_hours_next_open (hours, now);
      FUZZ_CHECK (!open || next == now, "open at %" G_GINT64_FORMAT " but next_open %"
                  G_GINT64_FORMAT, now, next);
      FUZZ_CHECK (next == 0 || next >= now, "next_open %" G_GINT64_FORMAT " before %"
                  G_GINT64_FORMAT, next, now);
      gint64 due = tm_hours_add_open_time (hours, now, 4 * 3600);
      FUZZ_CHECK (due == 0 || due >= now, "add_open_time went back in time");
      g_autofree char *local = tm_hours_format_local (hours, now);
      fuzz_check_text ("format_local", local);
    }
}

static void
check_config (const TmConfig *config)
{
  FUZZ_CHECK (config->queues->len >= 1, "no queue");
  FUZZ_CHECK (config->rules != NULL, "no rule set");
  FUZZ_CHECK (config->templates != NULL, "no templates");
  for (guint i = 0; i < config->hours->len; i++)
    check_hours (g_ptr_array_index (config->hours, i));
  for (guint i = 0; i < config->teams->len; i++)
    {
      const TmTeam *team = g_ptr_array_index (config->teams, i);
      FUZZ_CHECK (tm_config_team_by_name (config, team->name) == team, "team %s", team->name);
      fuzz_check_text ("team mailbox", team->mailbox);
      for (char **agent = team->agents; *agent != NULL; agent++)
        FUZZ_CHECK (tm_config_is_agent (config, *agent), "agent %s not found", *agent);
    }
  for (guint i = 0; i < config->queues->len; i++)
    {
      const TmQueue *queue = g_ptr_array_index (config->queues, i);
      FUZZ_CHECK (tm_config_queue_by_name (config, queue->name) == queue, "queue %s",
                  queue->name);
      FUZZ_CHECK (queue->addresses != NULL && queue->addresses[0] != NULL,
                  "queue %s without address", queue->name);
      for (char **address = queue->addresses; *address != NULL; address++)
        {
          fuzz_check_text ("queue address", *address);
          const TmQueue *owner = tm_config_queue_for_address (config, *address);
          FUZZ_CHECK (owner != NULL, "address %s of queue %s finds no queue", *address,
                      queue->name);
          g_autofree char *upper = g_strdup_printf (" <%s> ", *address);
          for (char *c = upper; *c != '\0'; c++)
            *c = g_ascii_toupper (*c);
          FUZZ_CHECK (tm_config_queue_for_address (config, upper) == owner,
                      "address %s in another case finds another queue", *address);
        }
      FUZZ_CHECK ((queue->team == NULL) || tm_config_team_by_name (config, queue->team) != NULL,
                  "queue %s names a missing team", queue->name);
      FUZZ_CHECK ((queue->hours_name == NULL) == (queue->hours == NULL),
                  "queue %s hours not resolved", queue->name);
      if (queue->ack)
        {
          FUZZ_CHECK (tm_template_set_lookup (config->templates, queue->language, "ack") != NULL,
                      "queue %s acknowledges without an ack template in %s", queue->name,
                      queue->language);
          FUZZ_CHECK (queue->hours == NULL
                      || tm_template_set_lookup (config->templates, queue->language,
                                                 "after-hours") != NULL,
                      "queue %s has hours but no after-hours template", queue->name);
        }
    }
  tm_config_is_trusted_client (config, "127.0.0.1");
  tm_config_is_trusted_client (config, "::1");
  tm_config_is_trusted_client (config, "not an address");
  tm_config_is_trusted_client (config, "");

  for (guint i = 0; i < sample_messages->len; i++)
    {
      const char *languages[] = { NULL, "ar", "fa", "en" };
      for (guint l = 0; l < G_N_ELEMENTS (languages); l++)
        {
          TmRuleResult result = { 0 };
          tm_rules_apply (config->rules, g_ptr_array_index (sample_messages, i), languages[l],
                          &result);
          FUZZ_CHECK (result.tags != NULL && result.matches != NULL, "rule result");
          for (char **tag = result.tags; *tag != NULL; tag++)
            fuzz_check_text ("rule tag", *tag);
          FUZZ_CHECK (result.priority == NULL || tm_priority_rank (result.priority) >= 0,
                      "priority %s", result.priority);
          FUZZ_CHECK (result.team == NULL || tm_config_team_by_name (config, result.team),
                      "a rule names missing team %s", result.team);
          for (guint m = 0; m < result.matches->len; m++)
            {
              const TmRuleMatch *match = g_ptr_array_index (result.matches, m);
              fuzz_check_text ("match rule", match->rule);
              fuzz_check_text ("match field", match->field);
              fuzz_check_optional_text ("match text", match->text);
            }
          tm_rule_result_clear (&result);
        }
    }
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  const char *text = (const char *) data;
  gsize config_length = size;
  const char *rules_text = NULL;
  gsize rules_length = 0;
  const char *split = size >= 3 ? g_strstr_len (text, (gssize) size, "\n%%\n") : NULL;
  if (split != NULL)
    {
      config_length = (gsize) (split - text) + 1;
      rules_text = split + 4;
      rules_length = size - (gsize) (rules_text - text);
    }

  g_autoptr (GString) config_text = g_string_new_len (text, (gssize) config_length);
  g_string_replace (config_text, "fuzz-rules.conf", rules_path, 0);
  gboolean has_templates = FALSE;
  if (!paths_are_safe (config_text->str, config_text->len, &has_templates))
    return 0;
  if (!has_templates)
    g_string_append_printf (config_text, "\n[templates]\ndir = %s\n", fuzz_template_dir ());
  fuzz_write_file (config_path, config_text->str, config_text->len);
  if (rules_text != NULL)
    fuzz_write_file (rules_path, rules_text, rules_length);
  else
    g_unlink (rules_path);

  GError *error = NULL;
  TmConfig *config = tm_config_load (config_path, TRUE, &error);
  if (config == NULL)
    {
      FUZZ_CHECK (error != NULL, "a failed load without an error");
      FUZZ_CHECK (error->domain == TM_CONFIG_ERROR, "error domain %s: %s",
                  g_quark_to_string (error->domain), error->message);
      fuzz_check_text ("error message", error->message);
      FUZZ_CHECK (strchr (error->message, '\n') == NULL, "error message of several lines: %s",
                  error->message);
      g_error_free (error);
      return 0;
    }
  FUZZ_CHECK (error == NULL, "a loaded configuration with an error");
  check_config (config);
  tm_config_free (&config);
  FUZZ_CHECK (config == NULL, "tm_config_free did not clear the pointer");
  return 0;
}
