/* test-config.c - ticket-milter.conf: defaults, good files, and every kind of bad one. */
#include "config.h"

#include "tm-test.h"

#include <glib/gstdio.h>
#include <string.h>

typedef struct {
  char *directory;
  char *path;
} Fixture;

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  fixture->directory = g_dir_make_tmp ("tm-config-XXXXXX", NULL);
  g_assert_nonnull (fixture->directory);
  fixture->path = g_build_filename (fixture->directory, "ticket-milter.conf", NULL);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  g_unlink (fixture->path);
  g_rmdir (fixture->directory);
  g_free (fixture->path);
  g_free (fixture->directory);
}

static TmConfig *
load_text (Fixture *fixture, const char *text, GError **error)
{
  g_autofree char *full = tm_test_config_text (text);
  g_assert_true (g_file_set_contents (fixture->path, full, -1, NULL));
  return tm_config_load (fixture->path, TRUE, error);
}

/* Loads TEXT, expects failure with CODE and every one of the NULL-terminated
 * fragments in the message. */
static void
expect_error (Fixture *fixture, const char *text, int code, ...)
{
  g_autoptr (GError) error = NULL;
  TmConfig *config = load_text (fixture, text, &error);
  g_assert_null (config);
  g_assert_error (error, TM_CONFIG_ERROR, code);
  g_assert_true (g_str_has_prefix (error->message, fixture->path));
  va_list args;
  va_start (args, code);
  for (const char *fragment = va_arg (args, const char *); fragment != NULL;
       fragment = va_arg (args, const char *))
    if (strstr (error->message, fragment) == NULL)
      g_error ("error \"%s\" does not mention \"%s\"", error->message, fragment);
  va_end (args);
}

/* A missing default file gives the built-in defaults, templates from the
 * installed TEMPLATEDIR; where they are not installed (a build tree) the
 * daemon must refuse to start, naming the directory. */
static void
test_missing_default_file_needs_installed_templates (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmConfig *config = tm_config_load (fixture->path, FALSE, &error);
  if (g_file_test (TEMPLATEDIR "/en/ack.txt", G_FILE_TEST_IS_REGULAR))
    {
      g_assert_no_error (error);
      g_assert_cmpstr (config->template_dir, ==, TEMPLATEDIR);
      g_assert_cmpuint (config->queues->len, ==, 1);
      tm_config_free (&config);
    }
  else
    {
      g_assert_null (config);
      g_assert_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_VALUE);
      g_assert_nonnull (strstr (error->message, TEMPLATEDIR));
    }
}

/* An empty file (here: one naming only the templates) gives every default. */
static void
test_empty_file_gives_defaults (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmConfig *config = load_text (fixture, "", &error);
  g_assert_no_error (error);
  g_assert_nonnull (config);
  g_assert_cmpuint (config->queues->len, ==, 1);
  const TmQueue *queue = g_ptr_array_index (config->queues, 0);
  g_assert_cmpstr (queue->name, ==, "support");
  g_assert_cmpstr (queue->addresses[0], ==, "support@localhost");
  g_assert_cmpstr (queue->tag_prefix, ==, "Ticket");
  g_assert_cmpstr (queue->language, ==, "en");
  g_assert_null (queue->team);
  g_assert_cmpint (config->on_error, ==, TM_ON_ERROR_TEMPFAIL);
  g_assert_true (g_str_has_suffix (config->store_path, "/lib/ticket-milter/tickets.db"));
  g_assert_true (g_str_has_prefix (config->milter_socket, "unix:"));
  g_assert_cmpstr (config->smtp_url, ==, "smtp://127.0.0.1:25");
  g_assert_cmpuint (config->max_message_size, ==, 10 * 1024 * 1024);
  g_assert_true (config->synchronous_full);
  g_assert_cmpuint (config->group_commit_max, ==, 64);
  g_assert_cmpstr (config->fallback_charsets[1], ==, "windows-1256");
  tm_config_free (&config);
  g_assert_null (config);
}

static void
test_missing_explicit_file_is_an_error (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmConfig *config = tm_config_load (fixture->path, TRUE, &error);
  g_assert_null (config);
  g_assert_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_READ);
  g_assert_nonnull (strstr (error->message, fixture->path));
}

static void
test_unreadable_file_is_an_error (Fixture *fixture, gconstpointer data)
{
  /* A directory where the file should be cannot be read, even by root. */
  g_autoptr (GError) error = NULL;
  TmConfig *config = tm_config_load (fixture->directory, TRUE, &error);
  g_assert_null (config);
  g_assert_error (error, TM_CONFIG_ERROR, TM_CONFIG_ERROR_READ);
}

static void
test_full_file (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmConfig *config = load_text (fixture,
    "# a desk with two queues\n"
    "[milter]\nsocket = inet:8891@127.0.0.1\non_error = accept\nuser =\n"
    "socket_mode = 0666\nmax_message_size = 2M\nmax_header_size = 64K\n"
    "trusted_networks = 10.0.0.0/8; ::1/128\n"
    "[store]\npath = /tmp/x.db\nbusy_timeout = 250\nsynchronous = normal\n"
    "[smtp]\nurl = smtp://127.0.0.1:2525\n"
    "[parser]\nfallback_charsets = UTF-8;ISO-8859-6\n"
    "[queue support]\naddress = Support@Example.COM ; <help@example.com>\n"
    "tag_prefix = Help\nteam = frontline\nlanguage = AR\n"
    "[queue billing]\naddress = billing@example.com\n"
    "[team frontline]\nmailbox = Frontline@Example.com\nagents = Alice@example.com;bob@example.com\n",
    &error);
  g_assert_no_error (error);
  g_assert_cmpstr (config->milter_socket, ==, "inet:8891@127.0.0.1");
  g_assert_cmpint (config->on_error, ==, TM_ON_ERROR_ACCEPT);
  g_assert_null (config->user);
  g_assert_cmpuint (config->socket_mode, ==, 0666);
  g_assert_cmpuint (config->max_message_size, ==, 2 * 1024 * 1024);
  g_assert_cmpuint (config->max_header_size, ==, 64 * 1024);
  g_assert_cmpuint (config->busy_timeout_ms, ==, 250);
  g_assert_false (config->synchronous_full);
  g_assert_cmpstr (config->fallback_charsets[1], ==, "ISO-8859-6");
  g_assert_cmpuint (config->queues->len, ==, 2);

  const TmQueue *support = tm_config_queue_for_address (config, "<SUPPORT@example.com>");
  g_assert_nonnull (support);
  g_assert_cmpstr (support->name, ==, "support");
  g_assert_cmpstr (support->addresses[1], ==, "help@example.com");
  g_assert_cmpstr (support->tag_prefix, ==, "Help");
  g_assert_cmpstr (support->language, ==, "ar");
  g_assert_cmpstr (tm_config_queue_for_address (config, " Billing@EXAMPLE.com ")->name, ==, "billing");
  g_assert_null (tm_config_queue_for_address (config, "sales@example.com"));
  g_assert_null (tm_config_queue_for_address (config, "support@example.com.evil"));

  const TmTeam *team = tm_config_team_by_name (config, "frontline");
  g_assert_cmpstr (team->mailbox, ==, "frontline@example.com");
  g_assert_true (tm_config_is_agent (config, "ALICE@example.com"));
  g_assert_false (tm_config_is_agent (config, "mallory@example.com"));

  g_assert_true (tm_config_is_trusted_client (config, "10.1.2.3"));
  g_assert_true (tm_config_is_trusted_client (config, "IPv6:::1"));
  g_assert_false (tm_config_is_trusted_client (config, "127.0.0.1"));
  g_assert_false (tm_config_is_trusted_client (config, "not an address"));
  g_assert_false (tm_config_is_trusted_client (config, NULL));
  tm_config_free (&config);
}

static void
test_syntax_error_names_the_line (Fixture *fixture, gconstpointer data)
{
  expect_error (fixture, "[milter]\nsocket = x\nthis line is no key\n",
                TM_CONFIG_ERROR_SYNTAX, "line 3", NULL);
}

/* GKeyFile would merge a group written twice and keep the last value of a
 * key given twice; both stop the load instead, naming the lines. */
static void
test_nothing_given_twice (Fixture *fixture, gconstpointer data)
{
  expect_error (fixture, "[queue support]\naddress = support@example.test\n\n"
                "[queue support]\nlanguage = ar\n",
                TM_CONFIG_ERROR_SYNTAX, "line 4", "[queue support] given twice", "first on line 1",
                NULL);
  expect_error (fixture, "[team t]\nmailbox = t@example.test\n[team t]\nmailbox = u@example.test\n",
                TM_CONFIG_ERROR_SYNTAX, "line 3", "[team t] given twice", NULL);
  expect_error (fixture, "[hours h]\ntimezone = UTC\ndays = mon-fri\nopen = 09:00-17:00\n"
                "  [hours h]  \n",
                TM_CONFIG_ERROR_SYNTAX, "line 5", "[hours h] given twice", NULL);
  expect_error (fixture, "[store]\nbusy_timeout = 100\n[milter]\non_error = accept\n[store]\n",
                TM_CONFIG_ERROR_SYNTAX, "line 5", "[store] given twice", NULL);
  expect_error (fixture, "[store]\nbusy_timeout = 100\nbusy_timeout = 200\n",
                TM_CONFIG_ERROR_SYNTAX, "[store] busy_timeout: given twice", NULL);
  expect_error (fixture, "[queue support]\naddress = a@example.test\naddress = b@example.test\n",
                TM_CONFIG_ERROR_SYNTAX, "[queue support] address: given twice", NULL);
  /* Different groups with the same key, and a group named like another's
   * prefix, are fine. */
  g_autoptr (GError) error = NULL;
  TmConfig *config = load_text (fixture, "[queue a]\naddress = a@example.test\n"
                                "[queue ab]\naddress = ab@example.test\n", &error);
  g_assert_no_error (error);
  tm_config_free (&config);
}

/* [queue Support] without an address answers to support@localhost,
 * lower-cased like every configured address (found by fuzz-config). */
static void
test_default_queue_address_is_lower_case (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmConfig *config = load_text (fixture, "[queue Support]\n", &error);
  g_assert_no_error (error);
  const TmQueue *queue = tm_config_queue_by_name (config, "Support");
  g_assert_nonnull (queue);
  g_assert_cmpstr (queue->addresses[0], ==, "support@localhost");
  g_assert_true (tm_config_queue_for_address (config, "Support@LocalHost") == queue);
  tm_config_free (&config);
}

static void
test_unknown_group (Fixture *fixture, gconstpointer data)
{
  expect_error (fixture, "[miltre]\nsocket = x\n", TM_CONFIG_ERROR_UNKNOWN,
                "[miltre]", "unknown group", NULL);
}

static void
test_unknown_key (Fixture *fixture, gconstpointer data)
{
  expect_error (fixture, "[store]\npaht = /tmp/x\n", TM_CONFIG_ERROR_UNKNOWN,
                "[store] paht", "unknown key", NULL);
  expect_error (fixture, "[queue support]\nadress = a@b\n", TM_CONFIG_ERROR_UNKNOWN,
                "[queue support] adress", NULL);
  expect_error (fixture, "[team t]\nmailbox = t@b\nagent = a@b\n", TM_CONFIG_ERROR_UNKNOWN,
                "[team t] agent", NULL);
}

static void
test_bad_values (Fixture *fixture, gconstpointer data)
{
  expect_error (fixture, "[milter]\non_error = reject\n", TM_CONFIG_ERROR_VALUE,
                "[milter] on_error", "reject", NULL);
  expect_error (fixture, "[milter]\nmax_message_size = 10Q\n", TM_CONFIG_ERROR_VALUE,
                "[milter] max_message_size", NULL);
  expect_error (fixture, "[milter]\nmax_message_size = 0\n", TM_CONFIG_ERROR_VALUE,
                "[milter] max_message_size", NULL);
  expect_error (fixture, "[milter]\nmax_message_size = 99999999999999999999G\n",
                TM_CONFIG_ERROR_VALUE, "[milter] max_message_size", NULL);
  expect_error (fixture, "[milter]\nsocket_mode = 0999\n", TM_CONFIG_ERROR_VALUE,
                "[milter] socket_mode", NULL);
  expect_error (fixture, "[milter]\nsocket =\n", TM_CONFIG_ERROR_VALUE,
                "[milter] socket", "empty", NULL);
  expect_error (fixture, "[milter]\ntrusted_networks = 10.0.0.0/99\n", TM_CONFIG_ERROR_VALUE,
                "[milter] trusted_networks", NULL);
  expect_error (fixture, "[store]\nbusy_timeout = -5\n", TM_CONFIG_ERROR_VALUE,
                "[store] busy_timeout", NULL);
  expect_error (fixture, "[store]\nsynchronous = off\n", TM_CONFIG_ERROR_VALUE,
                "[store] synchronous", NULL);
  expect_error (fixture, "[store]\ngroup_commit = 0\n", TM_CONFIG_ERROR_VALUE,
                "[store] group_commit", "between 1 and 1000", NULL);
  expect_error (fixture, "[store]\ngroup_commit = 1001\n", TM_CONFIG_ERROR_VALUE,
                "[store] group_commit", NULL);
  expect_error (fixture, "[store]\ngroup_commit = many\n", TM_CONFIG_ERROR_VALUE,
                "[store] group_commit", "many", NULL);
  expect_error (fixture, "[parser]\nfallback_charsets = ;\n", TM_CONFIG_ERROR_VALUE,
                "[parser] fallback_charsets", NULL);
  /* GIO would hand these to a GObject property and warn (fuzz-config). */
  expect_error (fixture, "[milter]\ntrusted_networks = ::1/812\n", TM_CONFIG_ERROR_VALUE,
                "[milter] trusted_networks", "812", NULL);
  expect_error (fixture, "[milter]\ntrusted_networks = 10.0.0.0/-1\n", TM_CONFIG_ERROR_VALUE,
                "[milter] trusted_networks", NULL);
}

static void
test_bad_queues_and_teams (Fixture *fixture, gconstpointer data)
{
  expect_error (fixture, "[queue support]\naddress = not-an-address\n", TM_CONFIG_ERROR_VALUE,
                "[queue support] address", "not-an-address", NULL);
  expect_error (fixture, "[queue support]\naddress =\n", TM_CONFIG_ERROR_VALUE,
                "[queue support] address", NULL);
  expect_error (fixture, "[queue support]\ntag_prefix = [Ticket]\n", TM_CONFIG_ERROR_VALUE,
                "[queue support] tag_prefix", NULL);
  expect_error (fixture, "[queue support]\nlanguage = 1\n", TM_CONFIG_ERROR_VALUE,
                "[queue support] language", NULL);
  expect_error (fixture, "[queue support]\nteam = nobody\n", TM_CONFIG_ERROR_VALUE,
                "[queue support] team", "nobody", NULL);
  expect_error (fixture,
                "[queue a]\naddress = x@example.com\n[queue b]\naddress = X@example.com\n",
                TM_CONFIG_ERROR_VALUE, "[queue b] address", "already belongs to queue a", NULL);
  expect_error (fixture, "[queue bad name]\naddress = x@example.com\n", TM_CONFIG_ERROR_VALUE,
                "[queue bad name]", NULL);
  expect_error (fixture, "[team t]\nagents = a@example.com\n", TM_CONFIG_ERROR_VALUE,
                "[team t] mailbox", "required", NULL);
  expect_error (fixture, "[team t]\nmailbox = t@example.com\nagents = a@example.com;junk\n",
                TM_CONFIG_ERROR_VALUE, "[team t] agents", "junk", NULL);
}

static void
test_team_defined_after_queue (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmConfig *config = load_text (fixture,
                                "[queue support]\naddress = s@example.com\nteam = late\n"
                                "[team late]\nmailbox = late@example.com\n", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tm_config_queue_by_name (config, "support")->team, ==, "late");
  tm_config_free (&config);
}

static void
test_empty_file_is_the_defaults (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  TmConfig *config = load_text (fixture, "# nothing set\n", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (config->queues->len, ==, 1);
  g_assert_nonnull (tm_config_queue_for_address (config, "support@localhost"));
  tm_config_free (&config);
}

/* The example shipped in contrib/ is what admins copy: it must load. */
static void
test_shipped_example_loads (void)
{
  const char *srcdir = g_getenv ("top_srcdir");
  g_autofree char *path = g_build_filename (srcdir != NULL ? srcdir : ".", "contrib",
                                            "ticket-milter.conf.example", NULL);
  /* Loaded as shipped, with the templates of this source tree (the
   * example names the installed ones). */
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_autofree char *directory = g_dir_make_tmp ("tm-example-XXXXXX", NULL);
  g_autofree char *copy = g_build_filename (directory, "example.conf", NULL);
  /* Its own "dir =" line of [templates] is replaced: a second [templates]
   * group would be refused as given twice. */
  g_autoptr (GRegex) dir_line = g_regex_new ("^dir = .*$", G_REGEX_MULTILINE, 0, NULL);
  g_autofree char *dir_value = g_strdup_printf ("dir = %s", tm_test_template_dir ());
  g_autofree char *with_templates = g_regex_replace_literal (dir_line, text, -1, 0, dir_value,
                                                             0, NULL);
  g_assert_nonnull (strstr (with_templates, dir_value));
  g_assert_true (g_file_set_contents (copy, with_templates, -1, NULL));
  g_autoptr (GError) error = NULL;
  TmConfig *config = tm_config_load (copy, TRUE, &error);
  tm_test_remove_directory (directory);
  g_assert_no_error (error);
  g_assert_cmpuint (config->queues->len, ==, 2);
  g_assert_cmpstr (tm_config_queue_for_address (config, "HELP@example.com")->name, ==, "support");
  g_assert_cmpstr (tm_config_queue_by_name (config, "billing")->team, ==, "billing");
  g_assert_true (tm_config_is_agent (config, "carol@example.com"));
  tm_config_free (&config);
}

static void
test_invalid_utf8_file (Fixture *fixture, gconstpointer data)
{
  expect_error (fixture, "[queue support]\naddress = s@example.com\ntag_prefix = \xff\xfe\n",
                TM_CONFIG_ERROR_SYNTAX, "line 3", "UTF-8", NULL);
}

static void
test_address_normalize (void)
{
  struct { const char *in, *out; } cases[] = {
    { "<Support@Example.COM>", "support@example.com" },
    { "  a@b  ", "a@b" },
    { "<>", "" },
    { "", "" },
    { "< x@y >", "x@y" },
    /* Raw SMTP bytes (found by fuzz-config): invalid UTF-8 becomes U+FFFD. */
    { "<A\xff" "B@X>", "a\xef\xbf\xbd" "b@x" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *got = tm_address_normalize (cases[i].in);
      g_assert_cmpstr (got, ==, cases[i].out);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, function) \
  g_test_add (path, Fixture, NULL, fixture_set_up, function, fixture_tear_down)
  ADD ("/config/defaults/missing-default-file", test_missing_default_file_needs_installed_templates);
  ADD ("/config/defaults/every-default", test_empty_file_gives_defaults);
  ADD ("/config/defaults/empty-file", test_empty_file_is_the_defaults);
  ADD ("/config/file/full", test_full_file);
  ADD ("/config/file/team-defined-after-queue", test_team_defined_after_queue);
  ADD ("/config/error/missing-explicit-file", test_missing_explicit_file_is_an_error);
  ADD ("/config/error/unreadable-file", test_unreadable_file_is_an_error);
  ADD ("/config/error/syntax-names-line", test_syntax_error_names_the_line);
  ADD ("/config/error/unknown-group", test_unknown_group);
  ADD ("/config/error/nothing-given-twice", test_nothing_given_twice);
  ADD ("/config/file/default-queue-address-lower-case", test_default_queue_address_is_lower_case);
  ADD ("/config/error/unknown-key", test_unknown_key);
  ADD ("/config/error/bad-values", test_bad_values);
  ADD ("/config/error/bad-queues-and-teams", test_bad_queues_and_teams);
  ADD ("/config/error/invalid-utf8", test_invalid_utf8_file);
#undef ADD
  g_test_add_func ("/config/address-normalize", test_address_normalize);
  g_test_add_func ("/config/shipped-example-loads", test_shipped_example_loads);
  return g_test_run ();
}
