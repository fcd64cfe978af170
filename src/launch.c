#include "launch.h"

#include <string.h>

void nj_launch_init(nj_launch *e, uint64_t key, const nj_plan *p, CUfunction fn, int sm_count,
                    int arch)
{
    memset(e, 0, sizeof *e);
    e->key = key;
    e->fn = fn;
    e->threads = (unsigned)(p->v.k.tpr * p->v.k.rpc);
    e->rpc = (unsigned)p->v.k.rpc;
    e->cluster = (unsigned)p->v.k.cluster;
    e->max_groups = 0x7fffffffu / e->cluster;
    e->pdl_ok = arch >= 90;
    if (p->ctas_per_sm > 0 && sm_count > 0) {
        unsigned cap = (unsigned)(p->ctas_per_sm * sm_count) / e->cluster;
        e->max_groups = cap ? cap : 1;
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
        cfg.hStream = stream;
        cfg.attrs = &attr;
        cfg.numAttrs = 1;
        return drv->launch_kernel_ex(&cfg, e->fn, args, NULL);
    }
    return drv->launch_kernel(e->fn, grid, 1, 1, e->threads, 1, 1, 0, stream, args, NULL);
}
