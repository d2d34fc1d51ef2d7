/* tm-test.h - small helpers shared by the unit tests and benchmarks. */
#ifndef TM_TEST_H
#define TM_TEST_H

#include <glib.h>

/* Removes the files directly inside PATH, then PATH itself (test
 * directories are flat); asserts that every removal worked. */
void tm_test_remove_directory (const char *path);

#endif
