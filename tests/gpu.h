/* Device-side test helpers over the library's driver table. */
#ifndef NJ_TEST_GPU_H
#define NJ_TEST_GPU_H

#include "driver_extra.h"
#include "normjit.h"

#include <stddef.h>

typedef struct nj_gpu {
    const nj_driver *drv;
    const nj_driver_extra *x;
    CUdevice dev;
    CUcontext cu;
    char name[256];
    int arch;
} nj_gpu;

/*
 * Open GPU 0 and make its primary context current in this thread.
 * Returns 0, or NJ_TEST_SKIP (77) after printing why when there is no GPU.
 */
int nj_gpu_open(nj_gpu *g);
void nj_gpu_close(nj_gpu *g);
/* Make the GPU's context current in the calling thread (for worker threads). */
void nj_gpu_bind(const nj_gpu *g);

/* These abort the test (cmocka fail) on a driver error. */
CUdeviceptr nj_gpu_alloc(const nj_gpu *g, size_t bytes);
void nj_gpu_free(const nj_gpu *g, CUdeviceptr p);
void nj_gpu_upload(const nj_gpu *g, CUdeviceptr dst, const void *src, size_t bytes);
void nj_gpu_download(const nj_gpu *g, void *dst, CUdeviceptr src, size_t bytes);
void nj_gpu_poison(const nj_gpu *g, CUdeviceptr p, size_t bytes); /* 0xFF bytes: NaN in every dtype */
/* Set every byte to `value` (a second poison: int8 has no NaN, and a NaN output must show as written). */
void nj_gpu_fill(const nj_gpu *g, CUdeviceptr p, size_t bytes, unsigned char value);
void nj_gpu_sync(const nj_gpu *g);

struct nj_tuning;
/* A context on the current GPU that plans from `table` (a tuning table's text, whatever
   device it names) before the shipped tables. Free *out_table after destroying the context. */
normjit_ctx *nj_gpu_ctx_with_table(const char *table, struct nj_tuning **out_table);

#define NJ_PTR(d) ((void *)(uintptr_t)(d))

#endif
