/*
 * An NVRTC table that compiles nothing: NVRTC 13.0 knowing sm_80 and sm_90,
 * whose compile either fails with the log FAKE_NVRTC_LOG or "succeeds" with
 * a tiny fake CUBIN. It counts programs so tests can check none leak.
 */
#ifndef NJ_FAKE_NVRTC_H
#define NJ_FAKE_NVRTC_H

#include "compiler.h"

#define FAKE_NVRTC_LOG "fake error log: line 1: nothing compiles here"

typedef struct fake_nvrtc_state {
    int fail_compile;
    int compiles;
    int programs_created;
    int programs_destroyed;
    char last_name[128]; /* the kernel name of the last program created */
} fake_nvrtc_state;

extern fake_nvrtc_state fake_nv;

/* Fill `n` with the fakes and reset fake_nv (compiles succeed until a test sets fail_compile). */
void fake_nvrtc_init(nj_nvrtc *n);

#endif
