#include "fault_fakes.h"

#include "normjit.h"

#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

ff_driver_state ff_drv = {.mu = PTHREAD_MUTEX_INITIALIZER};
ff_nvrtc_state ff_nv = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------------------ */
/* ELF size                                                                  */

#define FF_ELF_MAX ((size_t)64 << 20)

size_t ff_elf_size(const void *p)
{
    const unsigned char *b = p;
    Elf64_Ehdr eh;
    size_t end, i;

    if (memcmp(b, ELFMAG, SELFMAG) != 0 || b[EI_CLASS] != ELFCLASS64 ||
        b[EI_DATA] != ELFDATA2LSB)
        return 0;
    memcpy(&eh, b, sizeof eh);
    if (eh.e_ehsize < sizeof eh || eh.e_shoff > FF_ELF_MAX || eh.e_phoff > FF_ELF_MAX ||
        (eh.e_shnum && eh.e_shentsize != sizeof(Elf64_Shdr)) ||
        (eh.e_phnum && eh.e_phentsize != sizeof(Elf64_Phdr)))
        return 0;
    end = eh.e_ehsize;
    if (eh.e_shnum) {
        size_t t = (size_t)eh.e_shoff + (size_t)eh.e_shnum * eh.e_shentsize;
        if (t > FF_ELF_MAX)
            return 0;
        if (t > end)
            end = t;
    }
    if (eh.e_phnum) {
        size_t t = (size_t)eh.e_phoff + (size_t)eh.e_phnum * eh.e_phentsize;
        if (t > FF_ELF_MAX)
            return 0;
        if (t > end)
            end = t;
    }
    for (i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh;
        memcpy(&sh, b + eh.e_shoff + i * sizeof sh, sizeof sh);
        if (sh.sh_type == SHT_NOBITS || sh.sh_type == SHT_NULL)
            continue;
        if (sh.sh_offset > FF_ELF_MAX || sh.sh_size > FF_ELF_MAX - sh.sh_offset)
            return 0;
        if (sh.sh_offset + sh.sh_size > end)
            end = (size_t)(sh.sh_offset + sh.sh_size);
    }
    return end;
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

static CUresult f_driver_get_version(int *version)
{
    *version = 13000;
    return CUDA_SUCCESS;
}

static const char *result_name(CUresult r)
{
    switch (r) {
    case CUDA_SUCCESS:
        return "CUDA_SUCCESS";
    case CUDA_ERROR_INVALID_IMAGE:
        return "CUDA_ERROR_INVALID_IMAGE";
    case CUDA_ERROR_NOT_FOUND:
        return "CUDA_ERROR_NOT_FOUND";
    default:
        return "CUDA_ERROR_FAKE";
    }
}

static CUresult f_get_error_name(CUresult error, const char **str)
{
    *str = result_name(error);
    return CUDA_SUCCESS;
}

static CUresult f_get_error_string(CUresult error, const char **str)
{
    *str = error == CUDA_SUCCESS ? "no error" : "fake driver error";
    return CUDA_SUCCESS;
}

static CUresult f_device_get_name(char *name, int len, CUdevice dev)
{
    (void)dev;
    snprintf(name, (size_t)len, "%s", FF_DEVICE_NAME);
    return CUDA_SUCCESS;
}

static CUresult f_device_get_attribute(int *value, CUdevice_attribute attr, CUdevice dev)
{
    (void)dev;
    switch (attr) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
        *value = 9;
        return CUDA_SUCCESS;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
        *value = 0;
        return CUDA_SUCCESS;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
        *value = 132;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static CUresult f_device_total_mem(size_t *bytes, CUdevice dev)
{
    (void)dev;
    *bytes = (size_t)80 << 30;
    return CUDA_SUCCESS;
}

static CUresult f_ctx_get_current(CUcontext *ctx)
{
    *ctx = FF_CU_CTX;
    return CUDA_SUCCESS;
}

static CUresult f_ctx_get_device(CUdevice *dev)
{
    *dev = 0;
    return CUDA_SUCCESS;
}

static CUresult f_ctx_push_current(CUcontext ctx)
{
    (void)ctx;
    return CUDA_SUCCESS;
}

static CUresult f_ctx_pop_current(CUcontext *ctx)
{
    *ctx = FF_CU_CTX;
    return CUDA_SUCCESS;
}

static ff_kernel_count *kernel_slot(const char *name) /* ff_nv.mu held */
{
    int i;
    for (i = 0; i < ff_nv.n_kernels; i++)
        if (!strcmp(ff_nv.kernels[i].name, name))
            return &ff_nv.kernels[i];
    if (ff_nv.n_kernels == FF_MAX_KERNELS) {
        ff_nv.overflow = 1;
        return NULL;
    }
    snprintf(ff_nv.kernels[ff_nv.n_kernels].name, sizeof ff_nv.kernels[0].name, "%s", name);
    return &ff_nv.kernels[ff_nv.n_kernels++];
}

static CUresult f_module_load_data(CUmodule *module, const void *image)
{
    int n = atomic_fetch_add(&ff_drv.module_loads, 1) + 1;
    int fail = 0, left = atomic_load(&ff_drv.fail_next_loads);
    CUresult res;
    /* Take one scripted failure, if any is left. */
    while (left > 0 && !atomic_compare_exchange_weak(&ff_drv.fail_next_loads, &left, left - 1))
        ;
    fail = left > 0;
    res = fail ? CUDA_ERROR_INVALID_IMAGE : CUDA_SUCCESS;
    *module = fail ? NULL : (CUmodule)(uintptr_t)(0x100000 + (uintptr_t)n * 16);

    if (!strncmp(image, FF_FAKE_IMAGE_PREFIX, sizeof FF_FAKE_IMAGE_PREFIX - 1)) {
        ff_kernel_count *k;
        pthread_mutex_lock(&ff_nv.mu);
        if (!fail && (k = kernel_slot((const char *)image + sizeof FF_FAKE_IMAGE_PREFIX - 1)))
            k->loads++;
        pthread_mutex_unlock(&ff_nv.mu);
    }
    if (atomic_load(&ff_drv.record)) {
        size_t len = ff_elf_size(image);
        int is_elf = len > 0;
        ff_image *im;
        if (!is_elf)
            len = 4; /* enough to show what it was */
        pthread_mutex_lock(&ff_drv.mu);
        if (ff_drv.n_images == FF_MAX_IMAGES) {
            ff_drv.images_dropped++;
        } else {
            im = &ff_drv.images[ff_drv.n_images++];
            memset(im, 0, sizeof *im);
            im->bytes = malloc(len);
            if (im->bytes)
                memcpy(im->bytes, image, len);
            im->len = len;
            im->is_elf = is_elf;
            im->result = res;
            im->module = *module;
        }
        pthread_mutex_unlock(&ff_drv.mu);
    }
    return res;
}

static CUresult f_module_unload(CUmodule module)
{
    (void)module;
    atomic_fetch_add(&ff_drv.module_unloads, 1);
    return CUDA_SUCCESS;
}

static CUresult f_module_get_function(CUfunction *fn, CUmodule module, const char *name)
{
    int i;
    if (!module)
        return CUDA_ERROR_INVALID_HANDLE;
    if (atomic_load(&ff_drv.record)) {
        pthread_mutex_lock(&ff_drv.mu);
        for (i = ff_drv.n_images - 1; i >= 0; i--)
            if (ff_drv.images[i].module == module) {
                snprintf(ff_drv.images[i].name, sizeof ff_drv.images[i].name, "%s", name);
                break;
            }
        pthread_mutex_unlock(&ff_drv.mu);
    }
    *fn = (CUfunction)((uintptr_t)module + 1);
    return CUDA_SUCCESS;
}

static CUresult f_launch_kernel(CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                unsigned by, unsigned bz, unsigned shared_bytes, CUstream stream,
                                void **params, void **extra)
{
    (void)gy, (void)gz, (void)by, (void)bz, (void)shared_bytes, (void)stream, (void)extra;
    if (!fn || !params || gx == 0 || bx == 0 || bx > 1024)
        return CUDA_ERROR_INVALID_VALUE;
    atomic_fetch_add(&ff_drv.launches, 1);
    return CUDA_SUCCESS;
}

static CUresult f_launch_kernel_ex(const CUlaunchConfig *cfg, CUfunction fn, void **params,
                                   void **extra)
{
    return f_launch_kernel(fn, cfg->gridDimX, cfg->gridDimY, cfg->gridDimZ, cfg->blockDimX,
                           cfg->blockDimY, cfg->blockDimZ, cfg->sharedMemBytes, cfg->hStream,
                           params, extra);
}

static CUresult f_stream_is_capturing(CUstream stream, CUstreamCaptureStatus *status)
{
    (void)stream;
    *status = CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}

void ff_driver_clear_images(void)
{
    int i;
    pthread_mutex_lock(&ff_drv.mu);
    for (i = 0; i < ff_drv.n_images; i++)
        free(ff_drv.images[i].bytes);
    ff_drv.n_images = 0;
    ff_drv.images_dropped = 0;
    pthread_mutex_unlock(&ff_drv.mu);
}

void ff_driver_init(nj_driver *d)
{
    memset(d, 0, sizeof *d);
    d->driver_get_version = f_driver_get_version;
    d->get_error_name = f_get_error_name;
    d->get_error_string = f_get_error_string;
    d->device_get_name = f_device_get_name;
    d->device_get_attribute = f_device_get_attribute;
    d->device_total_mem = f_device_total_mem;
    d->ctx_get_current = f_ctx_get_current;
    d->ctx_get_device = f_ctx_get_device;
    d->ctx_push_current = f_ctx_push_current;
    d->ctx_pop_current = f_ctx_pop_current;
    d->module_load_data = f_module_load_data;
    d->module_unload = f_module_unload;
    d->module_get_function = f_module_get_function;
    d->launch_kernel = f_launch_kernel;
    d->launch_kernel_ex = f_launch_kernel_ex;
    d->stream_is_capturing = f_stream_is_capturing;

    ff_driver_clear_images();
    atomic_store(&ff_drv.launches, 0);
    atomic_store(&ff_drv.module_loads, 0);
    atomic_store(&ff_drv.module_unloads, 0);
    atomic_store(&ff_drv.fail_next_loads, 0);
    atomic_store(&ff_drv.record, 0);
}

/* ------------------------------------------------------------------------ */
/* NVRTC                                                                     */

typedef struct ff_program {
    char name[128];
    char *image;
    size_t image_len;
} ff_program;

static nvrtcResult n_version(int *major, int *minor)
{
    *major = 13;
    *minor = 0;
    return NVRTC_SUCCESS;
}

static const char *n_get_error_string(nvrtcResult res)
{
    return res == NVRTC_SUCCESS ? "NVRTC_SUCCESS" : "NVRTC_ERROR_FAKE";
}

static nvrtcResult n_get_num_supported_archs(int *count)
{
    *count = 2;
    return NVRTC_SUCCESS;
}

static nvrtcResult n_get_supported_archs(int *archs)
{
    archs[0] = 80;
    archs[1] = 90;
    return NVRTC_SUCCESS;
}

static nvrtcResult n_create_program(nvrtcProgram *prog, const char *src, const char *name,
                                    int num_headers, const char *const *headers,
                                    const char *const *include_names)
{
    ff_program *p;
    (void)num_headers, (void)headers, (void)include_names;
    if (!src || !name)
        return NVRTC_ERROR_INVALID_INPUT;
    if (!(p = calloc(1, sizeof *p)))
        return NVRTC_ERROR_OUT_OF_MEMORY;
    snprintf(p->name, sizeof p->name, "%s", name);
    atomic_fetch_add(&ff_nv.programs_created, 1);
    *prog = (nvrtcProgram)p;
    return NVRTC_SUCCESS;
}

static nvrtcResult n_destroy_program(nvrtcProgram *prog)
{
    ff_program *p = (ff_program *)*prog;
    if (p) {
        free(p->image);
        free(p);
        atomic_fetch_add(&ff_nv.programs_destroyed, 1);
    }
    *prog = NULL;
    return NVRTC_SUCCESS;
}

static nvrtcResult n_compile_program(nvrtcProgram prog, int num_options,
                                     const char *const *options)
{
    ff_program *p = (ff_program *)prog;
    ff_kernel_count *k;
    int now, max;
    (void)num_options, (void)options;

    now = atomic_fetch_add(&ff_nv.concurrent, 1) + 1;
    max = atomic_load(&ff_nv.max_concurrent);
    while (now > max && !atomic_compare_exchange_weak(&ff_nv.max_concurrent, &max, now))
        ;
    if (ff_nv.compile_sleep_us > 0) {
        struct timespec ts = {0, (long)ff_nv.compile_sleep_us * 1000L};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&ff_nv.compiles, 1);
    pthread_mutex_lock(&ff_nv.mu);
    if ((k = kernel_slot(p->name)) != NULL)
        k->compiles++;
    pthread_mutex_unlock(&ff_nv.mu);

    p->image_len = sizeof FF_FAKE_IMAGE_PREFIX - 1 + strlen(p->name) + 1;
    p->image = malloc(p->image_len);
    atomic_fetch_sub(&ff_nv.concurrent, 1);
    if (!p->image)
        return NVRTC_ERROR_OUT_OF_MEMORY;
    snprintf(p->image, p->image_len, "%s%s", FF_FAKE_IMAGE_PREFIX, p->name);
    return NVRTC_SUCCESS;
}

static nvrtcResult n_get_program_log_size(nvrtcProgram prog, size_t *size)
{
    (void)prog;
    *size = 1;
    return NVRTC_SUCCESS;
}

static nvrtcResult n_get_program_log(nvrtcProgram prog, char *log)
{
    (void)prog;
    log[0] = '\0';
    return NVRTC_SUCCESS;
}

static nvrtcResult n_get_image_size(nvrtcProgram prog, size_t *size)
{
    ff_program *p = (ff_program *)prog;
    if (!p->image)
        return NVRTC_ERROR_INVALID_PROGRAM;
    *size = p->image_len;
    return NVRTC_SUCCESS;
}

static nvrtcResult n_get_image(nvrtcProgram prog, char *image)
{
    ff_program *p = (ff_program *)prog;
    if (!p->image)
        return NVRTC_ERROR_INVALID_PROGRAM;
    memcpy(image, p->image, p->image_len);
    return NVRTC_SUCCESS;
}

void ff_nvrtc_init(nj_nvrtc *n, int sleep_us)
{
    memset(n, 0, sizeof *n);
    n->version = n_version;
    n->get_error_string = n_get_error_string;
    n->get_num_supported_archs = n_get_num_supported_archs;
    n->get_supported_archs = n_get_supported_archs;
    n->create_program = n_create_program;
    n->destroy_program = n_destroy_program;
    n->compile_program = n_compile_program;
    n->get_program_log_size = n_get_program_log_size;
    n->get_program_log = n_get_program_log;
    n->get_cubin_size = n_get_image_size;
    n->get_cubin = n_get_image;
    n->get_ptx_size = n_get_image_size;
    n->get_ptx = n_get_image;

    pthread_mutex_lock(&ff_nv.mu);
    memset(ff_nv.kernels, 0, sizeof ff_nv.kernels);
    ff_nv.n_kernels = 0;
    ff_nv.overflow = 0;
    pthread_mutex_unlock(&ff_nv.mu);
    ff_nv.compile_sleep_us = sleep_us;
    atomic_store(&ff_nv.programs_created, 0);
    atomic_store(&ff_nv.programs_destroyed, 0);
    atomic_store(&ff_nv.compiles, 0);
    atomic_store(&ff_nv.concurrent, 0);
    atomic_store(&ff_nv.max_concurrent, 0);
}

const ff_kernel_count *ff_nvrtc_kernel(const char *name)
{
    const ff_kernel_count *found = NULL;
    int i;
    pthread_mutex_lock(&ff_nv.mu);
    for (i = 0; i < ff_nv.n_kernels; i++)
        if (!strcmp(ff_nv.kernels[i].name, name))
            found = &ff_nv.kernels[i];
    pthread_mutex_unlock(&ff_nv.mu);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Log capture                                                               */

void ff_log_init(ff_log *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
}

void ff_log_destroy(ff_log *l)
{
    pthread_mutex_destroy(&l->mu);
}

void ff_log_fn(void *user, int level, const char *message)
{
    ff_log *l = user;
    pthread_mutex_lock(&l->mu);
    if (level >= 0 && level < 4)
        l->count[level]++;
    if (l->n < FF_MAX_LOG) {
        snprintf(l->messages[l->n], sizeof l->messages[0], "%s", message);
        l->levels[l->n] = level;
        l->n++;
    }
    pthread_mutex_unlock(&l->mu);
}

int ff_log_count(ff_log *l, int level)
{
    int n;
    pthread_mutex_lock(&l->mu);
    n = level >= 0 && level < 4 ? l->count[level] : 0;
    pthread_mutex_unlock(&l->mu);
    return n;
}

void ff_log_dump(ff_log *l, const char *title)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    int i;
    pthread_mutex_lock(&l->mu);
    printf("# %s: %d message(s)\n", title, l->n);
    for (i = 0; i < l->n; i++)
        printf("#   [%s] %s\n", names[l->levels[i] & 3], l->messages[i]);
    pthread_mutex_unlock(&l->mu);
}
