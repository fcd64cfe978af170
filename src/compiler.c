#include "compiler.h"

#include "files.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NJ_SYM(member, name) {name, offsetof(nj_nvrtc, member)}
static const struct {
    const char *name;
    size_t offset;
} symbols[] = {
    NJ_SYM(version, "nvrtcVersion"),
    NJ_SYM(get_error_string, "nvrtcGetErrorString"),
    NJ_SYM(get_num_supported_archs, "nvrtcGetNumSupportedArchs"),
    NJ_SYM(get_supported_archs, "nvrtcGetSupportedArchs"),
    NJ_SYM(create_program, "nvrtcCreateProgram"),
    NJ_SYM(destroy_program, "nvrtcDestroyProgram"),
    NJ_SYM(compile_program, "nvrtcCompileProgram"),
    NJ_SYM(get_program_log_size, "nvrtcGetProgramLogSize"),
    NJ_SYM(get_program_log, "nvrtcGetProgramLog"),
    NJ_SYM(get_cubin_size, "nvrtcGetCUBINSize"),
    NJ_SYM(get_cubin, "nvrtcGetCUBIN"),
    NJ_SYM(get_ptx_size, "nvrtcGetPTXSize"),
    NJ_SYM(get_ptx, "nvrtcGetPTX"),
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static nj_nvrtc loaded;
static int load_status;
static char load_message[1024];

static void load(void)
{
    static const char *defaults[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
    const char *env = getenv("NORMJIT_NVRTC");
    const char *tried = env && *env ? env : "libnvrtc.so.13, libnvrtc.so.12, libnvrtc.so";
    const char *name = NULL;
    void *lib = NULL;
    size_t i;

    if (env && *env) {
        /* A path (not a name for the loader to search): a regular file, checked without
           blocking, so that a FIFO or a device there fails here instead of inside dlopen. */
        if (strchr(env, '/')) {
            nj_file_error e;
            struct stat st;
            int fd = nj_file_open(AT_FDCWD, env, 0, NJ_FILE_ANY_SIZE, &st, &e);
            if (fd < 0) {
                load_status = NORMJIT_ENONVRTC;
                snprintf(load_message, sizeof load_message,
                         "cannot load NVRTC from %.800s (NORMJIT_NVRTC): %s", env, e.text);
                return;
            }
            close(fd);
        }
        name = env;
        lib = dlopen(env, RTLD_NOW | RTLD_LOCAL);
    } else {
        for (i = 0; i < sizeof defaults / sizeof defaults[0] && !lib; i++)
            lib = dlopen(name = defaults[i], RTLD_NOW | RTLD_LOCAL);
    }
    if (!lib) {
        const char *why = dlerror();
        load_status = NORMJIT_ENONVRTC;
        snprintf(load_message, sizeof load_message,
                 "cannot load NVRTC (tried %s): %s; install the CUDA runtime compiler library "
                 "or set NORMJIT_NVRTC to its path",
                 tried, why ? why : "unknown error");
        return;
    }
    for (i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *fn = dlsym(lib, symbols[i].name);
        if (!fn) {
            load_status = NORMJIT_ENONVRTC;
            snprintf(load_message, sizeof load_message,
                     "cannot use %.900s%s as NVRTC: it lacks %s (not an NVRTC library, or one "
                     "older than CUDA 11.2)",
                     name, env && *env ? " (NORMJIT_NVRTC)" : "", symbols[i].name);
            dlclose(lib);
            return;
        }
        memcpy((char *)&loaded + symbols[i].offset, &fn, sizeof fn);
    }
    load_status = NORMJIT_OK;
}

int nj_nvrtc_load(const nj_nvrtc **out)
{
    pthread_once(&load_once, load);
    *out = load_status == NORMJIT_OK ? &loaded : NULL;
    if (load_status != NORMJIT_OK)
        return nj_fail(load_status, "%s", load_message);
    return NORMJIT_OK;
}

static int nvrtc_fail(const nj_nvrtc *nvrtc, nvrtcResult res, const char *what)
{
    const char *s = nvrtc->get_error_string ? nvrtc->get_error_string(res) : NULL;
    return nj_fail(NORMJIT_ECOMPILE, "%s failed: %s", what, s ? s : "unknown NVRTC error");
}

int nj_target_init(nj_target *t, const nj_nvrtc *nvrtc, int device_arch)
{
    int n = 0, archs[64], i, best = 0;
    nvrtcResult res;

    memset(t, 0, sizeof *t);
    if ((res = nvrtc->version(&t->nvrtc_major, &t->nvrtc_minor)) != NVRTC_SUCCESS)
        return nvrtc_fail(nvrtc, res, "nvrtcVersion");
    if ((res = nvrtc->get_num_supported_archs(&n)) != NVRTC_SUCCESS)
        return nvrtc_fail(nvrtc, res, "nvrtcGetNumSupportedArchs");
    if (n <= 0 || n > 64)
        return nj_fail(NORMJIT_ECOMPILE, "NVRTC reports %d supported architectures", n);
    if ((res = nvrtc->get_supported_archs(archs)) != NVRTC_SUCCESS)
        return nvrtc_fail(nvrtc, res, "nvrtcGetSupportedArchs");
    for (i = 0; i < n; i++) {
        if (archs[i] == device_arch)
            t->cubin = 1;
        if (archs[i] <= device_arch && archs[i] > best)
            best = archs[i];
    }
    if (!best)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "NVRTC %d.%d cannot compile for sm_%d or any older architecture",
                       t->nvrtc_major, t->nvrtc_minor, device_arch);
    t->arch = t->cubin ? device_arch : best;
    snprintf(t->arch_option, sizeof t->arch_option, "--gpu-architecture=%s_%d",
             t->cubin ? "sm" : "compute", t->arch);
    snprintf(t->dir_name, sizeof t->dir_name, "%s_%d", t->cubin ? "sm" : "compute", t->arch);
    t->options[t->n_options++] = t->arch_option;
    t->options[t->n_options++] = "-default-device";
    t->options[t->n_options++] = "--std=c++17";
    /* The kernels use no texture, runtime API or device-side launch: without their
       declarations NVRTC's built-in header parses in half the time (about 9 ms of a first
       compile on a 2-core machine), and the machine code is the same (docs/PERFORMANCE.md).
       NVRTC knows the option from CUDA 12.4. */
    if (t->nvrtc_major > 12 || (t->nvrtc_major == 12 && t->nvrtc_minor >= 4))
        t->options[t->n_options++] = "-minimal";
    return NORMJIT_OK;
}

int nj_compile(const nj_nvrtc *nvrtc, const nj_target *t, const char *source, const char *name,
               nj_buf *image)
{
    nvrtcProgram prog = NULL;
    nvrtcResult res;
    size_t size = 0;
    int status = NORMJIT_OK;

    nj_buf_reset(image);
    res = nvrtc->create_program(&prog, source, name, 0, NULL, NULL);
    if (res != NVRTC_SUCCESS)
        return nvrtc_fail(nvrtc, res, "nvrtcCreateProgram");

    res = nvrtc->compile_program(prog, t->n_options, t->options);
    if (res != NVRTC_SUCCESS) {
        nj_buf log = {0};
        size_t log_size = 0;
        if (nvrtc->get_program_log_size(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
            char *text = malloc(log_size);
            if (text && nvrtc->get_program_log(prog, text) == NVRTC_SUCCESS)
                nj_buf_append(&log, text, strlen(text));
            free(text);
        }
        status = nj_fail(NORMJIT_ECOMPILE, "NVRTC could not compile kernel %s for %s: %s\n%s",
                         name, t->dir_name, nvrtc->get_error_string(res),
                         log.data ? log.data : "(no log)");
        nj_buf_free(&log);
        nvrtc->destroy_program(&prog);
        return status;
    }

    res = t->cubin ? nvrtc->get_cubin_size(prog, &size) : nvrtc->get_ptx_size(prog, &size);
    if (res != NVRTC_SUCCESS)
        status = nvrtc_fail(nvrtc, res, t->cubin ? "nvrtcGetCUBINSize" : "nvrtcGetPTXSize");
    else if (size == 0)
        status = nj_fail(NORMJIT_ECOMPILE, "NVRTC produced an empty image for kernel %s", name);
    else if (!nj_buf_reserve(image, size))
        status = nj_fail(NORMJIT_ENOMEM, "out of memory for a %zu-byte kernel image", size);
    else if ((res = t->cubin ? nvrtc->get_cubin(prog, image->data)
                             : nvrtc->get_ptx(prog, image->data)) != NVRTC_SUCCESS)
        status = nvrtc_fail(nvrtc, res, t->cubin ? "nvrtcGetCUBIN" : "nvrtcGetPTX");
    else {
        image->len = size;
        image->data[size] = '\0';
    }
    nvrtc->destroy_program(&prog);
    return status;
}
