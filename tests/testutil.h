/* Test helpers: the run's random seed and the skip status; numerics are in tools/hostref.h. */
#ifndef NJ_TESTUTIL_H
#define NJ_TESTUTIL_H

#include "hostref.h"

#include <stddef.h>
#include <stdint.h>

/* Exit status that makes Meson report a test as skipped. */
#define NJ_TEST_SKIP 77

/* The run's seed: $NORMJIT_TEST_SEED, else fresh. Printed by nj_test_seed_banner(). */
uint64_t nj_test_seed(void);
void nj_test_seed_banner(const char *suite);

/* Seconds since an arbitrary start, monotonic. */
double nj_now_seconds(void);

/*
 * NORMJIT_TEST_QUICK=1: the GPU suite runs a reduced set of cases (for
 * compute-sanitizer, which slows kernels a hundredfold); the full run is the
 * default and the one whose counts are reported.
 */
int nj_test_quick(void);

#endif
