#include "fake_nvrtc.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

fake_nvrtc_state fake_nv;

/* A stand-in CUBIN: the ELF magic and a few bytes; the fake driver never reads it. */
static const char fake_cubin[] = "\x7f" "ELF fake cubin";

static nvrtcResult f_version(int *major, int *minor)
{
    *major = 13;
    *minor = 0;
    return NVRTC_SUCCESS;
}

static const char *f_get_error_string(nvrtcResult res)
{
    return res == NVRTC_SUCCESS ? "NVRTC_SUCCESS" : "NVRTC_ERROR_COMPILATION";
}

static nvrtcResult f_get_num_supported_archs(int *count)
{
    *count = 2;
    return NVRTC_SUCCESS;
}

static nvrtcResult f_get_supported_archs(int *archs)
{
    archs[0] = 80;
    archs[1] = 90;
    return NVRTC_SUCCESS;
}

static nvrtcResult f_create_program(nvrtcProgram *prog, const char *src, const char *name,
                                    int num_headers, const char *const *headers,
                                    const char *const *include_names)
{
    (void)src, (void)num_headers, (void)headers, (void)include_names;
    fake_nv.programs_created++;
    snprintf(fake_nv.last_name, sizeof fake_nv.last_name, "%s", name);
    *prog = (nvrtcProgram)(uintptr_t)0x5000;
    return NVRTC_SUCCESS;
}

static nvrtcResult f_destroy_program(nvrtcProgram *prog)
{
    fake_nv.programs_destroyed++;
    *prog = NULL;
    return NVRTC_SUCCESS;
}

static nvrtcResult f_compile_program(nvrtcProgram prog, int num_options,
                                     const char *const *options)
{
    (void)prog, (void)num_options, (void)options;
    fake_nv.compiles++;
    return fake_nv.fail_compile ? NVRTC_ERROR_COMPILATION : NVRTC_SUCCESS;
}

static nvrtcResult f_get_program_log_size(nvrtcProgram prog, size_t *size)
{
    (void)prog;
    *size = sizeof FAKE_NVRTC_LOG;
    return NVRTC_SUCCESS;
}

static nvrtcResult f_get_program_log(nvrtcProgram prog, char *log)
{
    (void)prog;
    memcpy(log, FAKE_NVRTC_LOG, sizeof FAKE_NVRTC_LOG);
    return NVRTC_SUCCESS;
}

static nvrtcResult f_get_image_size(nvrtcProgram prog, size_t *size)
{
    (void)prog;
    *size = sizeof fake_cubin - 1;
    return NVRTC_SUCCESS;
}

static nvrtcResult f_get_image(nvrtcProgram prog, char *image)
{
    (void)prog;
    memcpy(image, fake_cubin, sizeof fake_cubin - 1);
    return NVRTC_SUCCESS;
}

void fake_nvrtc_init(nj_nvrtc *n)
{
    n->version = f_version;
    n->get_error_string = f_get_error_string;
    n->get_num_supported_archs = f_get_num_supported_archs;
    n->get_supported_archs = f_get_supported_archs;
    n->create_program = f_create_program;
    n->destroy_program = f_destroy_program;
    n->compile_program = f_compile_program;
    n->get_program_log_size = f_get_program_log_size;
    n->get_program_log = f_get_program_log;
    n->get_cubin_size = f_get_image_size;
    n->get_cubin = f_get_image;
    n->get_ptx_size = f_get_image_size;
    n->get_ptx = f_get_image;

    memset(&fake_nv, 0, sizeof fake_nv);
}
