/* fuzz-common.h - helpers shared by the libFuzzer targets in tests/fuzz.
 *
 * Every target includes this once. It provides:
 *   fuzz_init_glib ()       criticals, warnings and errors abort (a
 *                           g_return_if_fail tripped by input is a bug the
 *                           fuzzer must see); GMime initialised once.
 *   FUZZ_CHECK (cond, ...)  an invariant: prints the message and aborts, so
 *                           libFuzzer saves the input as a crash.
 *   fuzz_check_text ()      "valid UTF-8 and no NUL up to the terminator".
 *   fuzz_template_dir ()    $TM_TEMPLATE_DIR, else TM_FUZZ_SRCDIR/templates.
 *   fuzz_scratch_dir ()     a private temporary directory for files a target
 *                           must write (configuration, template trees),
 *                           preferably on tmpfs; removed at exit.
 *   fuzz_write_file ()      writes bytes to a path, aborting on failure.
 *
 * The targets are built by tests/fuzz/run.sh, which defines TM_FUZZ_SRCDIR.
 */
#ifndef TM_FUZZ_COMMON_H
#define TM_FUZZ_COMMON_H

#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "message.h"

#ifndef TM_FUZZ_SRCDIR
#define TM_FUZZ_SRCDIR "."
#endif

#define FUZZ_CHECK(cond, ...)                                                   \
  do                                                                            \
    {                                                                           \
      if (!(cond))                                                              \
        {                                                                       \
          fprintf (stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, \
                   #cond);                                                      \
          fprintf (stderr, __VA_ARGS__);                                        \
          fputc ('\n', stderr);                                                 \
          abort ();                                                             \
        }                                                                       \
    }                                                                           \
  while (0)

/* Any g_critical (a failed g_return_if_fail), g_warning or g_error is a
 * finding. GLib's own way of making them fatal is a breakpoint (SIGTRAP),
 * which libFuzzer does not catch: it would neither print a stack nor save
 * the input. So the handler aborts itself, after printing the message. */
static inline void
fuzz_log_handler (const gchar *domain, GLogLevelFlags level, const gchar *message,
                  gpointer user_data)
{
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    {
      fprintf (stderr, "%s-%s: %s\n", domain != NULL ? domain : "(main)",
               level & G_LOG_LEVEL_ERROR ? "ERROR" : level & G_LOG_LEVEL_CRITICAL ? "CRITICAL"
                                                                                 : "WARNING",
               message);
      abort ();
    }
}

static inline GLogWriterOutput
fuzz_log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                 gpointer user_data)
{
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    {
      const char *domain = NULL, *message = "";
      for (gsize i = 0; i < n_fields; i++)
        if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0 && fields[i].length < 0)
          domain = fields[i].value;
        else if (strcmp (fields[i].key, "MESSAGE") == 0 && fields[i].length < 0)
          message = fields[i].value;
      fuzz_log_handler (domain, level, message, NULL);
    }
  return G_LOG_WRITER_HANDLED;
}

static inline void
fuzz_init_glib (void)
{
  g_log_set_default_handler (fuzz_log_handler, NULL);
  g_log_set_writer_func (fuzz_log_writer, NULL, NULL);
  tm_message_library_init ();
}

/* A string the code promises to be valid UTF-8 without NUL: g_utf8_validate
 * with -1 stops at the terminator, so NUL inside cannot be seen from here;
 * what can be checked is that the whole C string validates. */
static inline void
fuzz_check_text (const char *what, const char *text)
{
  FUZZ_CHECK (text != NULL, "%s is NULL", what);
  const char *end = NULL;
  FUZZ_CHECK (g_utf8_validate (text, -1, &end), "%s is not valid UTF-8 at byte %td", what,
              end - text);
}

static inline void
fuzz_check_optional_text (const char *what, const char *text)
{
  if (text != NULL)
    fuzz_check_text (what, text);
}

static inline const char *
fuzz_template_dir (void)
{
  const char *dir = g_getenv ("TM_TEMPLATE_DIR");
  return dir != NULL && *dir != '\0' ? dir : TM_FUZZ_SRCDIR "/templates";
}

static char *fuzz_scratch = NULL;

static inline void
fuzz_remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  if (dir != NULL)
    {
      for (const char *name; (name = g_dir_read_name (dir)) != NULL;)
        {
          char *child = g_build_filename (path, name, NULL);
          if (g_file_test (child, G_FILE_TEST_IS_DIR)
              && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            fuzz_remove_tree (child);
          else
            g_unlink (child);
          g_free (child);
        }
      g_dir_close (dir);
    }
  g_rmdir (path);
}

static inline void
fuzz_remove_scratch (void)
{
  if (fuzz_scratch != NULL)
    fuzz_remove_tree (fuzz_scratch);
  g_clear_pointer (&fuzz_scratch, g_free);
}

/* Made once, inside $TM_FUZZ_SCRATCH when run.sh sets it (run.sh removes
 * that at the end, so a target that crashed leaves nothing behind), else
 * in /dev/shm when there is one, so that writing a file per input costs no
 * disk I/O. */
static inline const char *
fuzz_scratch_dir (void)
{
  if (fuzz_scratch != NULL)
    return fuzz_scratch;
  const char *parent = g_getenv ("TM_FUZZ_SCRATCH");
  if (parent == NULL && g_getenv ("TMPDIR") == NULL
      && g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR) && access ("/dev/shm", W_OK) == 0)
    parent = "/dev/shm";
  if (parent != NULL)
    {
      char *template_ = g_build_filename (parent, "tm-fuzz-XXXXXX", NULL);
      fuzz_scratch = g_mkdtemp (template_);
      if (fuzz_scratch == NULL)
        g_free (template_);
    }
  if (fuzz_scratch == NULL)
    fuzz_scratch = g_dir_make_tmp ("tm-fuzz-XXXXXX", NULL);
  FUZZ_CHECK (fuzz_scratch != NULL, "cannot make a scratch directory");
  atexit (fuzz_remove_scratch);
  return fuzz_scratch;
}

static inline void
fuzz_write_file (const char *path, const char *data, gsize length)
{
  GError *error = NULL;
  FUZZ_CHECK (g_file_set_contents (path, data, (gssize) length, &error), "%s",
              error != NULL ? error->message : path);
}

#endif
