/* tm-test.c - helpers shared by the unit tests and benchmarks. */
#include "tm-test.h"

#include <glib/gstdio.h>
#include <string.h>

void
tm_test_remove_directory (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  for (const char *name; dir != NULL && (name = g_dir_read_name (dir)) != NULL;)
    {
      g_autofree char *file = g_build_filename (path, name, NULL);
      g_assert_cmpint (g_unlink (file), ==, 0);
    }
  g_assert_cmpint (g_rmdir (path), ==, 0);
}

const char *
tm_test_template_dir (void)
{
  const char *dir = g_getenv ("TM_TEMPLATE_DIR");
#ifdef TM_ABS_TOP_SRCDIR
  if (dir == NULL)
    dir = TM_ABS_TOP_SRCDIR "/templates";
#endif
  g_assert_nonnull (dir);
  return dir;
}

char *
tm_test_config_text (const char *text)
{
  if (strstr (text, "[templates]") != NULL)
    return g_strdup (text);
  /* At the end, so that line numbers in error messages stay those of TEXT. */
  return g_strdup_printf ("%s\n[templates]\ndir = %s\n", text, tm_test_template_dir ());
}

void
tm_test_desk_open (TmTestDesk *desk, const char *config_text)
{
  g_autoptr (GError) error = NULL;
  desk->directory = g_dir_make_tmp ("tm-desk-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *path = g_build_filename (desk->directory, "ticket-milter.conf", NULL);
  g_autofree char *text = tm_test_config_text (config_text);
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  desk->config = tm_config_load (path, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_unlink (path), ==, 0);
  g_autofree char *db = g_build_filename (desk->directory, "tickets.db", NULL);
  TmStoreOptions options = { .busy_timeout_ms = 1000, .synchronous_full = FALSE, .create = TRUE };
  desk->store = tm_store_open (db, &options, &error);
  g_assert_no_error (error);
}

void
tm_test_desk_close (TmTestDesk *desk)
{
  tm_store_close (&desk->store);
  tm_config_free (&desk->config);
  tm_test_remove_directory (desk->directory);
  g_clear_pointer (&desk->directory, g_free);
}
