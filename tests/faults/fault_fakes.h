/*
 * Fakes for the fault-injection and thread tests (tests/faults/).
 *
 * Unlike tests/fake_driver.c these are thread safe (atomic counters, a mutex
 * around the records), so test_threads can run under ThreadSanitizer, and
 * the driver keeps a copy of every image handed to cuModuleLoadData, so a
 * test can check that nothing but NVRTC's own output was ever loaded.
 */
#ifndef NJ_FAULT_FAKES_H
#define NJ_FAULT_FAKES_H

#include "compiler.h"
#include "driver.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

#define FF_CU_CTX ((CUcontext)(uintptr_t)0x1000)
#define FF_DEVICE_NAME "Fault Injection GPU" /* matches no shipped tuning table */
#define FF_MAX_IMAGES 256

/* One cuModuleLoadData call. */
typedef struct ff_image {
    unsigned char *bytes; /* a copy: the whole ELF image, or the first bytes of anything else */
    size_t len;
    int is_elf;        /* starts with the ELF magic and its headers describe a plausible file */
    CUresult result;   /* what the fake returned */
    char name[128];    /* the kernel looked up in the module afterwards ("" if none) */
    CUmodule module;
} ff_image;

typedef struct ff_driver_state {
    atomic_int launches;
    atomic_int module_loads;   /* calls, successful or not */
    atomic_int module_unloads;
    atomic_int fail_next_loads; /* the next N loads return CUDA_ERROR_INVALID_IMAGE */
    atomic_int record;          /* 1: copy each image into images[] */
    pthread_mutex_t mu;         /* guards what follows */
    ff_image images[FF_MAX_IMAGES];
    int n_images;
    int images_dropped; /* loads past FF_MAX_IMAGES */
} ff_driver_state;

extern ff_driver_state ff_drv;

/* Fill `d` with the fakes (a "Fault Injection GPU", sm_90, 132 SMs, 80 GiB) and reset ff_drv. */
void ff_driver_init(nj_driver *d);
/* Forget the recorded images (and free their copies). */
void ff_driver_clear_images(void);

/*
 * Length of the ELF file at `p` from its own headers (ELF64 little-endian:
 * the end of the furthest header table or section), or 0 when `p` does not
 * start with a plausible ELF64 header. Reads only the headers it describes,
 * capped at 64 MiB.
 */
size_t ff_elf_size(const void *p);

/* ------------------------------------------------------------------------ */
/* A slow, counting NVRTC for the thread test                               */

#define FF_MAX_KERNELS 256
#define FF_FAKE_IMAGE_PREFIX "\x7f" "ELF" "fake-cubin:"

typedef struct ff_kernel_count {
    char name[128];
    int compiles;
    int loads;
} ff_kernel_count;

typedef struct ff_nvrtc_state {
    int compile_sleep_us;
    atomic_int programs_created;
    atomic_int programs_destroyed;
    atomic_int compiles;
    atomic_int concurrent, max_concurrent; /* compiles in progress at once */
    pthread_mutex_t mu; /* guards kernels[] (shared with the driver's load counting) */
    ff_kernel_count kernels[FF_MAX_KERNELS];
    int n_kernels;
    int overflow;
} ff_nvrtc_state;

extern ff_nvrtc_state ff_nv;

/*
 * Fill `n` with an NVRTC 13.0 that knows sm_80 and sm_90 and "compiles" by
 * sleeping `sleep_us`, counting per kernel name, and returning the image
 * FF_FAKE_IMAGE_PREFIX "<kernel name>" (NUL-terminated). With this NVRTC the
 * fake driver counts loads per kernel name from the image.
 */
void ff_nvrtc_init(nj_nvrtc *n, int sleep_us);
/* The counters of one kernel name, or NULL if it was never compiled nor loaded. */
const ff_kernel_count *ff_nvrtc_kernel(const char *name);

/* ------------------------------------------------------------------------ */
/* Log capture                                                               */

#define FF_MAX_LOG 64

typedef struct ff_log {
    pthread_mutex_t mu;
    int count[4]; /* per NORMJIT_LOG_* level */
    int n;
    char messages[FF_MAX_LOG][512];
    int levels[FF_MAX_LOG];
} ff_log;

void ff_log_init(ff_log *l);
void ff_log_destroy(ff_log *l);
/* A normjit_log_fn; `user` is an ff_log. */
void ff_log_fn(void *user, int level, const char *message);
int ff_log_count(ff_log *l, int level);
/* Print every captured message (for a failing test's output). */
void ff_log_dump(ff_log *l, const char *title);

#endif
