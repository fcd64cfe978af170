/*
 * normjit demo: the README's first command. On a machine with a GPU it
 * normalizes the seed benchmark's Small shape (4 x 512 x 4096, fp16) with
 * RMSNorm and LayerNorm, checks every row against the double-precision
 * reference and prints the time. Without a GPU it warms the kernel cache for
 * sm_90 with the common hidden sizes instead, printing what it compiled.
 */
#include "driver_extra.h"
#include "gpubench.h"
#include "hostref.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: normjit demo\n"
    "\n"
    "With a GPU: normalize 4 x 512 x 4096 fp16 (the seed benchmark's Small shape)\n"
    "with RMSNorm and LayerNorm, check all 2048 rows against a double-precision\n"
    "reference, and print the kernel time. Without one: compile the kernels of the\n"
    "common hidden sizes for sm_90 into the disk cache ('normjit warm --arch sm_90').\n";

static int warm_instead(const char *why)
{
    char *argv[] = {"warm", "--arch", "sm_90", NULL};
    printf("normjit demo: no GPU here (%s)\nso warming the kernel cache for sm_90 instead:\n",
           why);
    fflush(stdout);
    return nj_cmd_warm(3, argv);
}

static int run_op(nj_bench_gpu *g, normjit_ctx *ctx, int op)
{
    nj_bench_op bop = nj_bench_plain(op, NORMJIT_DTYPE_F16, 4 * 512, 4096);
    nj_bench_buffers b;
    nj_bench_api_user u = {ctx, &bop, &b};
    double ms, err;
    int status;

    if ((status = nj_bench_alloc(g, &bop, 2026, &b)) != NORMJIT_OK)
        return nj_report_failure("demo", status);
    if ((status = nj_bench_launch_api(&u, 0, g->stream)) != NORMJIT_OK) {
        nj_bench_free(g, &b);
        return nj_report_failure("demo", status);
    }
    err = nj_bench_check(g, &bop, &b);
    ms = nj_bench_median_ms(g, nj_bench_launch_api, &u, b.sets, 10, 100, &status);
    nj_bench_free(g, &b);
    if (!(err >= 0) || err > nj_tolerance(bop.s.ty)) {
        printf("%-9s 4x512x4096 f16: WRONG RESULT (max normalized error %.3g)\n",
               op == NORMJIT_OP_RMSNORM ? "rmsnorm" : "layernorm", err);
        return NJ_EXIT_FAIL;
    }
    if (ms <= 0)
        return nj_report_failure("demo", status);
    printf("%-9s 4x512x4096 f16: %.1f us, %.0f GB/s, max normalized error %.1e (checked)\n",
           op == NORMJIT_OP_RMSNORM ? "rmsnorm" : "layernorm", ms * 1e3,
           nj_bench_bytes(&bop) / (ms * 1e-3) * 1e-9, err);
    return NJ_EXIT_OK;
}

int nj_cmd_demo(int argc, char **argv)
{
    const nj_driver *drv;
    const nj_driver_extra *x;
    nj_bench_gpu g;
    normjit_ctx *ctx = NULL;
    int status, rc, count = 0;

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(help, stdout);
        return NJ_EXIT_OK;
    }
    if (argc > 1)
        return nj_usage_error("demo", "unexpected argument '%s'", argv[1]);
    if (nj_driver_extra_load(&drv, &x) != NORMJIT_OK)
        return warm_instead(normjit_last_error());
    if (x->device_get_count(&count) != CUDA_SUCCESS || count == 0)
        return warm_instead("the driver reports no device");
    if ((status = nj_bench_gpu_open(&g)) != NORMJIT_OK)
        return nj_report_failure("demo", status);
    if ((status = normjit_ctx_create(&ctx, NULL)) != NORMJIT_OK) {
        nj_bench_gpu_close(&g);
        return nj_report_failure("demo", status);
    }
    printf("normjit %s on %s (sm_%d), kernel cache %s\n", normjit_version_string(), g.name,
           g.arch, normjit_ctx_cache_dir(ctx) ? normjit_ctx_cache_dir(ctx) : "(memory only)");
    rc = run_op(&g, ctx, NORMJIT_OP_RMSNORM);
    if (rc == NJ_EXIT_OK)
        rc = run_op(&g, ctx, NORMJIT_OP_LAYERNORM);
    normjit_ctx_destroy(ctx);
    nj_bench_gpu_close(&g);
    return rc;
}
