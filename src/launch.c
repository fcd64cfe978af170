#include "launch.h"

#include <string.h>

/* How many CTAs (clusters) of `e` the GPU runs at once; 0 if the driver cannot say. */
static unsigned resident_groups(const nj_driver *drv, const nj_launch *e, int sm_count)
{
    int n = 0;
    if (!drv || !e->fn)
        return 0;
    if (e->cluster == 1) {
        if (drv->occupancy_max_active_blocks(&n, e->fn, (int)e->threads, e->smem) != CUDA_SUCCESS)
            return 0;
        return n > 0 ? (unsigned)n * (unsigned)sm_count : 0;
    } else {
        CUlaunchConfig cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.gridDimX = e->cluster;
        cfg.gridDimY = cfg.gridDimZ = 1;
        cfg.blockDimX = e->threads;
        cfg.blockDimY = cfg.blockDimZ = 1;
        cfg.sharedMemBytes = e->smem;
        if (drv->occupancy_max_active_clusters(&n, e->fn, &cfg) != CUDA_SUCCESS)
            return 0;
        return n > 0 ? (unsigned)n : 0;
    }
}

void nj_launch_init(nj_launch *e, uint64_t key, const nj_plan *p, CUfunction fn, int sm_count,
                    int arch, const nj_driver *drv)
{
    memset(e, 0, sizeof *e);
    e->key = key;
    e->fn = fn;
    e->threads = (unsigned)(p->v.k.tpr * p->v.k.rpc);
    e->rpc = (unsigned)p->v.k.rpc;
    e->cluster = (unsigned)p->v.k.cluster;
    e->max_groups = 0x7fffffffu / e->cluster;
    e->pdl_ok = arch >= 90;
    e->smem = (unsigned)nj_variant_stage_bytes(&p->v);
    if (p->ctas_per_sm > 0 && sm_count > 0) {
        unsigned cap = (unsigned)(p->ctas_per_sm * sm_count) / e->cluster;
        e->max_groups = cap ? cap : 1;
        if (p->v.k.storage == NJ_STORAGE_STAGED) {
            unsigned held = resident_groups(drv, e, sm_count);
            if (held && held < e->max_groups)
                e->max_groups = held;
        }
    }
}

CUresult nj_launch_run(const nj_driver *drv, const nj_launch *e, const nj_params *params, int pdl,
                       CUstream stream)
{
    /* The kernel takes one parameter: the block, by value. */
    void *args[] = {(void *)params};
    int64_t groups = (params->rows + e->rpc - 1) / e->rpc;
    unsigned grid;
    if (groups > e->max_groups)
        groups = e->max_groups;
    grid = (unsigned)groups * e->cluster;
    if (pdl && e->pdl_ok) {
        CUlaunchAttribute attr;
        CUlaunchConfig cfg;
        memset(&attr, 0, sizeof attr);
        memset(&cfg, 0, sizeof cfg);
        attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        cfg.gridDimX = grid;
        cfg.gridDimY = cfg.gridDimZ = 1;
        cfg.blockDimX = e->threads;
        cfg.blockDimY = cfg.blockDimZ = 1;
        cfg.sharedMemBytes = e->smem;
        cfg.hStream = stream;
        cfg.attrs = &attr;
        cfg.numAttrs = 1;
        return drv->launch_kernel_ex(&cfg, e->fn, args, NULL);
    }
    return drv->launch_kernel(e->fn, grid, 1, 1, e->threads, 1, 1, e->smem, stream, args, NULL);
}
