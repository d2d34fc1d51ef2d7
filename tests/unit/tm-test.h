/* tm-test.h - small helpers shared by the unit tests and benchmarks. */
#ifndef TM_TEST_H
#define TM_TEST_H

#include <glib.h>

/* Removes the files directly inside PATH, then PATH itself (test
 * directories are flat); asserts that every removal worked. */
void tm_test_remove_directory (const char *path);

/* The templates shipped in the source tree: $TM_TEMPLATE_DIR (make check
 * sets it), else the source tree this program was built from. Static. */
const char *tm_test_template_dir (void);

/* TEXT (configuration file text) with a [templates] group naming
 * tm_test_template_dir() after it, unless TEXT has its own. New string. */
char *tm_test_config_text (const char *text) G_GNUC_WARN_UNUSED_RESULT;


#include "config.h"
#include "store.h"

/* A configuration and an empty store in a temporary directory of their own,
 * as most pipeline-level tests need them. */
typedef struct {
  char *directory;           /* removed by tm_test_desk_close() */
  TmConfig *config;          /* loaded from CONFIG_TEXT (with the templates) */
  TmStore *store;            /* DIRECTORY/tickets.db, busy timeout 1 s,
                                synchronous = normal */
} TmTestDesk;

/* Asserts that every step works. */
void tm_test_desk_open (TmTestDesk *desk, const char *config_text);
void tm_test_desk_close (TmTestDesk *desk);

#endif
