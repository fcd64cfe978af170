/*
 * Shared by the fuzz targets: FUZZ_CHECK states a property that must hold
 * for every input. Under libFuzzer a violated property aborts (a crash, with
 * the input saved); in the plain replay build (NJ_FUZZ_REPLAY, replay_main.c)
 * it names the input being replayed and exits 1.
 */
#ifndef NJ_FUZZ_COMMON_H
#define NJ_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef NJ_FUZZ_REPLAY
extern const char *nj_fuzz_current_input; /* set by replay_main.c */
#endif

#if defined(__GNUC__)
__attribute__((noreturn, unused))
#endif
static void nj_fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz property violated at %s:%d: %s\n", file, line, what);
#ifdef NJ_FUZZ_REPLAY
    fprintf(stderr, "input: %s\n", nj_fuzz_current_input ? nj_fuzz_current_input : "?");
    exit(1);
#else
    abort();
#endif
}

#define FUZZ_CHECK(cond)                                   \
    do {                                                   \
        if (!(cond))                                       \
            nj_fuzz_fail(__FILE__, __LINE__, #cond);       \
    } while (0)

#endif
