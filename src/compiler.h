/*
 * NVRTC, reached only through this table (loaded from libnvrtc.so.<major> on
 * first need; tests pass fakes), and the one way kernels are compiled:
 * straight to CUBIN for the device's architecture, or to PTX only when the
 * loaded NVRTC does not know that architecture.
 */
#ifndef NJ_COMPILER_H
#define NJ_COMPILER_H

#include "buf.h"

#include <nvrtc.h>

typedef struct nj_nvrtc {
    nvrtcResult (*version)(int *major, int *minor);
    const char *(*get_error_string)(nvrtcResult res);
    nvrtcResult (*get_num_supported_archs)(int *count);
    nvrtcResult (*get_supported_archs)(int *archs);
    nvrtcResult (*create_program)(nvrtcProgram *prog, const char *src, const char *name,
                                  int num_headers, const char *const *headers,
                                  const char *const *include_names);
    nvrtcResult (*destroy_program)(nvrtcProgram *prog);
    nvrtcResult (*compile_program)(nvrtcProgram prog, int num_options,
                                   const char *const *options);
    nvrtcResult (*get_program_log_size)(nvrtcProgram prog, size_t *size);
    nvrtcResult (*get_program_log)(nvrtcProgram prog, char *log);
    nvrtcResult (*get_cubin_size)(nvrtcProgram prog, size_t *size);
    nvrtcResult (*get_cubin)(nvrtcProgram prog, char *cubin);
    nvrtcResult (*get_ptx_size)(nvrtcProgram prog, size_t *size);
    nvrtcResult (*get_ptx)(nvrtcProgram prog, char *ptx);
} nj_nvrtc;

/*
 * The process's NVRTC table, loaded on first use: $NORMJIT_NVRTC if set,
 * else libnvrtc.so.13, .so.12, .so. NORMJIT_ENONVRTC with a message if none loads.
 */
int nj_nvrtc_load(const nj_nvrtc **out);

#define NJ_MAX_OPTIONS 8

/* What to compile for: machine code (CUBIN) for `arch`, or PTX as a last resort. */
typedef struct nj_target {
    int arch;       /* compute capability as major * 10 + minor, e.g. 90 */
    int cubin;      /* 1: CUBIN for exactly `arch`; 0: PTX for `arch` */
    int nvrtc_major;
    int nvrtc_minor;
    const char *options[NJ_MAX_OPTIONS];
    int n_options;
    char arch_option[40];
    char dir_name[16]; /* "sm_90" or "compute_90": the disk cache's folder for this target */
} nj_target;

/*
 * The target for a device of compute capability `device_arch`: CUBIN when the
 * NVRTC knows the architecture; otherwise PTX for the newest architecture it
 * knows below it (the driver finishes the job); an error if it knows none.
 */
int nj_target_init(nj_target *t, const nj_nvrtc *nvrtc, int device_arch);

/* Compile `source` (defining kernel `name`) for `t` into `image` (CUBIN or NUL-terminated PTX). */
int nj_compile(const nj_nvrtc *nvrtc, const nj_target *t, const char *source, const char *name,
               nj_buf *image);

#endif
