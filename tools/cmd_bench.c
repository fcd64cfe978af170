/* normjit bench: the seed benchmark's shapes, checked, then timed against the copy bandwidth. */
#include "args.h"
#include "ctx.h"
#include "gpubench.h"
#include "hostref.h"
#include "parse.h"
#include "tool.h"
#include "variant.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SHAPES 32

static const char help[] =
    "usage: normjit bench [options]\n"
    "\n"
    "Time normjit on the seed benchmark's six shapes (Small 4x512x4096, Medium\n"
    "1x2048x4096, Large 1x4096x8192, XL 1x16384x8192, XXL 1x32768x12288, XXXL\n"
    "1x131072x16384) or the shapes given. Each output is first checked against a\n"
    "double-precision reference. Times are CUDA-event medians with a cold L2;\n"
    "bandwidth counts x read, y written and the weights read once, and is\n"
    "compared with the device-to-device copy bandwidth measured in the same run.\n"
    "\n"
    "  --shape BxSxH     a shape to time (repeatable; default: the six seed shapes)\n"
    "  --op LIST         rmsnorm,layernorm,add_rmsnorm,add_layernorm,qk_rmsnorm\n"
    "                    (default: rmsnorm,layernorm)\n"
    "  --quant LIST      none,fp8-tensor,fp8-token,int8-token,fp8-group128,... (default:\n"
    "                    none): quantized outputs of every op that has them\n"
    "  --heads N         qk_rmsnorm: heads per token (H is head_dim; default 1)\n"
    "  --dtype LIST      f16,bf16,f32 (default: f16,bf16)\n"
    "  --iters N         timed launches per case (default: 100)\n"
    "  --csv FILE        also write the results as CSV\n"
    "  --json            print the results as one JSON array instead of a table\n"
    "\n"
    "Every case is also compared with a same-size copy: a device copy of exactly\n"
    "the bytes the call moves, timed the same way in the same run.\n"
    "  --overhead        instead: host time of a cached call against a bare\n"
    "                    cuLaunchKernel of the same kernel (1 row of 4096, f16)\n";

static const struct {
    const char *name;
    int64_t b, s, h;
} seed_shapes[] = {
    {"Small", 4, 512, 4096},     {"Medium", 1, 2048, 4096},   {"Large", 1, 4096, 8192},
    {"XL", 1, 16384, 8192},      {"XXL", 1, 32768, 12288},    {"XXXL", 1, 131072, 16384},
};

typedef struct shape {
    char name[32];
    char text[48];
    int64_t rows, hidden;
} shape;

/* Host wall time per call of `calls` launches, batch by batch, median over batches. */
#define OVERHEAD_BATCH 1000
#define OVERHEAD_BATCHES 200

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/*
 * --overhead: what a cached normjit call costs the host beyond launching the
 * kernel. Both loops launch the same function with the same arguments on the
 * same stream, in alternating batches (so drift hits both alike); only the
 * enqueue loop is timed, the GPU catches up between batches.
 */
static int overhead(nj_bench_gpu *g, normjit_ctx *ctx)
{
    nj_bench_op op = nj_bench_plain(NORMJIT_OP_RMSNORM, NORMJIT_DTYPE_F16, 1, 4096);
    nj_bench_buffers b;
    normjit_norm_args a;
    nj_call call;
    nj_params params;
    nj_request r;
    const nj_launch *e;
    double bare[OVERHEAD_BATCHES], api[OVERHEAD_BATCHES];
    int i, k, status;

    if ((status = nj_bench_alloc(g, &op, 1, &b)) != NORMJIT_OK)
        return nj_report_failure("bench --overhead", status);
    nj_bench_args(&op, &b, 0, &a);
    if ((status = normjit_rmsnorm_fwd(ctx, &a, g->stream)) != NORMJIT_OK ||
        (status = nj_call_check(NORMJIT_OP_RMSNORM, &a, &call)) != NORMJIT_OK)
        return nj_report_failure("bench --overhead", status);
    nj_call_params(&call, &params);
    r.s = op.s;
    r.vec = nj_widest_vec(&op.s);
    r.bucket = nj_bucket_of_rows(op.rows);
    if (!(e = nj_kernels_find(&ctx->kernels, nj_request_key(&r)))) {
        fprintf(stderr, "normjit bench: the cached kernel was not found\n");
        return NJ_EXIT_FAIL;
    }
    for (k = 0; k < OVERHEAD_BATCHES; k++) {
        double t0 = nj_now();
        for (i = 0; i < OVERHEAD_BATCH; i++)
            if (nj_launch_run(g->drv, e, &params, 0, g->stream) != CUDA_SUCCESS)
                return nj_report_failure("bench --overhead", NORMJIT_EDRIVER);
        bare[k] = (nj_now() - t0) / OVERHEAD_BATCH * 1e6;
        g->x->stream_synchronize(g->stream);
        t0 = nj_now();
        for (i = 0; i < OVERHEAD_BATCH; i++)
            if ((status = normjit_rmsnorm_fwd(ctx, &a, g->stream)) != NORMJIT_OK)
                return nj_report_failure("bench --overhead", status);
        api[k] = (nj_now() - t0) / OVERHEAD_BATCH * 1e6;
        g->x->stream_synchronize(g->stream);
    }
    nj_bench_free(g, &b);
    qsort(bare, OVERHEAD_BATCHES, sizeof *bare, cmp_double);
    qsort(api, OVERHEAD_BATCHES, sizeof *api, cmp_double);
    printf("host time per call, median of %d batches of %d (rmsnorm f16, 1 x 4096) on %s:\n"
           "  bare cuLaunchKernel:   %.3f us\n  normjit_rmsnorm_fwd:   %.3f us\n"
           "  normjit overhead:      %.3f us\n",
           OVERHEAD_BATCHES, OVERHEAD_BATCH, g->name, bare[OVERHEAD_BATCHES / 2],
           api[OVERHEAD_BATCHES / 2], api[OVERHEAD_BATCHES / 2] - bare[OVERHEAD_BATCHES / 2]);
    return NJ_EXIT_OK;
}

/* One timed case: its op (and spec), shape and label. */
typedef struct bench_case {
    nj_bench_op op;
    const shape *sh;
    int quant_code;
} bench_case;

typedef struct bench_out {
    FILE *csv;
    int json, n_json;
    const char *date;
    const nj_bench_gpu *g;
    double copy_bw;
} bench_out;

/* Median time of a device copy of `bytes_moved` / 2 bytes (a copy reads and writes). */
static double same_size_copy_ms(nj_bench_gpu *g, double bytes_moved, int iters)
{
    return nj_bench_copy_ms(g, (size_t)(bytes_moved / 2), iters);
}

static void report(bench_out *o, const bench_case *bc, double ms, double copy_ms, double error,
                   const char *problem)
{
    const nj_bench_op *op = &bc->op;
    const double bytes = nj_bench_bytes(op);
    const double gbps = ms > 0 ? bytes / (ms * 1e-3) * 1e-9 : 0;
    const char *quant = nj_tool_quant_name(bc->quant_code ? bc->quant_code : 1);
    if (o->json) {
        printf("%s\n  {\"config\": \"%s\", \"shape\": \"%s\", \"rows\": %lld, \"hidden\": %lld, "
               "\"op\": \"%s\", \"dtype\": \"%s\", \"quant\": \"%s\", ",
               o->n_json++ ? "," : "[", bc->sh->name, bc->sh->text, (long long)op->rows,
               (long long)op->s.hidden, nj_op_name(op->s.op), nj_dtype_name(op->s.tx), quant);
        if (problem)
            printf("\"error\": \"%s\"}", problem);
        else
            printf("\"ms\": %.5f, \"gbps\": %.1f, \"pct_copy\": %.2f, \"same_size_copy_ms\": %.5f, "
                   "\"pct_same_size_copy\": %.2f, \"max_error\": %.3g}",
                   ms, gbps, 100.0 * gbps * 1e9 / o->copy_bw, copy_ms, 100.0 * copy_ms / ms, error);
    } else if (problem) {
        printf("| %s | %s | %s | %s | %s | %s |\n", bc->sh->name, bc->sh->text, nj_op_name(op->s.op),
               nj_dtype_name(op->s.tx), quant, problem);
    } else {
        printf("| %s | %s | %s | %s | %s | %.4f | %.0f | %.1f%% | %.4f | %.1f%% | %.1e |\n",
               bc->sh->name, bc->sh->text, nj_op_name(op->s.op), nj_dtype_name(op->s.tx), quant,
               ms, gbps, 100.0 * gbps * 1e9 / o->copy_bw, copy_ms, 100.0 * copy_ms / ms, error);
    }
    fflush(stdout);
    if (o->csv && !problem)
        fprintf(o->csv, "\"%s\",%s,%s,%s,%lld,%lld,%s,%s,%s,%.5f,%.1f,%.2f,%.5f,%.2f,%.3g,%.4f\n",
                o->g->name, o->date, bc->sh->name, bc->sh->text, (long long)op->rows,
                (long long)op->s.hidden, nj_op_name(op->s.op), nj_dtype_name(op->s.tx), quant, ms,
                gbps, 100.0 * gbps * 1e9 / o->copy_bw, copy_ms, 100.0 * copy_ms / ms, error,
                o->copy_bw * 1e-12);
}

/* Check, then time one case. Returns 1 if it failed. */
static int run_case(nj_bench_gpu *g, normjit_ctx *ctx, bench_out *o, const bench_case *bc,
                    int iters)
{
    nj_bench_buffers b;
    nj_bench_api_user u = {ctx, &bc->op, &b};
    double ms, error, copy_ms;
    char problem[320];
    int status;
    if ((status = nj_bench_alloc(g, &bc->op, (uint64_t)(nj_now() * 1e6), &b)) != NORMJIT_OK) {
        snprintf(problem, sizeof problem, "skipped: %s", normjit_last_error());
        report(o, bc, 0, 0, 0, problem);
        return 1;
    }
    /* Check before timing: one launch on set 0 against the reference. */
    status = nj_bench_launch_api(&u, 0, g->stream);
    error = status == NORMJIT_OK ? nj_bench_check(g, &bc->op, &b) : -1;
    if (status != NORMJIT_OK || !(error >= 0) || error > nj_tolerance(bc->op.s.ty)) {
        snprintf(problem, sizeof problem, "WRONG RESULT (error %.3g)%s%s", error,
                 status == NORMJIT_OK ? "" : ": ", status == NORMJIT_OK ? "" : normjit_last_error());
        report(o, bc, 0, 0, error, problem);
        nj_bench_free(g, &b);
        return 1;
    }
    ms = nj_bench_median_ms(g, nj_bench_launch_api, &u, b.sets, 10, iters, &status);
    nj_bench_free(g, &b);
    copy_ms = same_size_copy_ms(g, nj_bench_bytes(&bc->op), iters);
    if (ms <= 0) {
        snprintf(problem, sizeof problem, "FAILED: %s", normjit_last_error());
        report(o, bc, 0, 0, 0, problem);
        return 1;
    }
    report(o, bc, ms, copy_ms, error, NULL);
    return 0;
}

int nj_cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"shape", required_argument, NULL, 's'}, {"op", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, 'd'}, {"iters", required_argument, NULL, 'i'},
        {"csv", required_argument, NULL, 'c'},   {"help", no_argument, NULL, 'h'},
        {"overhead", no_argument, NULL, 'O'},    {"quant", required_argument, NULL, 'Q'},
        {"heads", required_argument, NULL, 'H'}, {"json", no_argument, NULL, 'J'},
        {NULL, 0, NULL, 0}};
    int ops[8] = {NORMJIT_OP_RMSNORM, NORMJIT_OP_LAYERNORM}, n_ops = 2;
    int dtypes[3] = {NORMJIT_DTYPE_F16, NORMJIT_DTYPE_BF16}, n_dtypes = 2;
    int quants[16] = {1}, n_quants = 1;
    shape shapes[MAX_SHAPES];
    int n_shapes = 0, iters = 100, c, si, o, d, q, status, failed = 0, want_overhead = 0;
    int64_t num, heads = 1;
    const char *csv_path = NULL;
    char err[256], date[32];
    nj_bench_gpu g;
    normjit_ctx *ctx = NULL;
    normjit_ctx_options copt;
    bench_out out;
    time_t now = time(NULL);

    memset(&out, 0, sizeof out);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (n_shapes == MAX_SHAPES)
                return nj_usage_error("bench", "at most %d shapes", MAX_SHAPES);
            if (nj_parse_shape(optarg, &shapes[n_shapes].rows, &shapes[n_shapes].hidden, err,
                               sizeof err))
                return nj_usage_error("bench", "--shape: %s", err);
            if (shapes[n_shapes].hidden > NJ_MAX_HIDDEN)
                return nj_usage_error("bench", "--shape: hidden size above %d", NJ_MAX_HIDDEN);
            snprintf(shapes[n_shapes].name, sizeof shapes[n_shapes].name, "custom");
            snprintf(shapes[n_shapes].text, sizeof shapes[n_shapes].text, "%s", optarg);
            n_shapes++;
            break;
        case 'o':
            if ((n_ops = nj_parse_name_list(optarg, nj_op_parse, "op", ops, 8, err,
                                            sizeof err)) < 0)
                return nj_usage_error("bench", "--op: %s", err);
            break;
        case 'd':
            if ((n_dtypes = nj_parse_name_list(optarg, nj_dtype_parse, "dtype", dtypes, 3, err,
                                               sizeof err)) < 0)
                return nj_usage_error("bench", "--dtype: %s", err);
            for (d = 0; d < n_dtypes; d++)
                if (!nj_dtype_is_float(dtypes[d]))
                    return nj_usage_error("bench", "--dtype: f16, bf16 or f32");
            break;
        case 'Q':
            if ((n_quants = nj_parse_name_list(optarg, nj_tool_quant_code, "quant", quants, 16,
                                               err, sizeof err)) < 0)
                return nj_usage_error("bench", "--quant: %s", err);
            break;
        case 'H':
            if (nj_parse_int_list(optarg, 1, 1024, &heads, 1, err, sizeof err) < 0)
                return nj_usage_error("bench", "--heads: %s", err);
            break;
        case 'i':
            if (nj_parse_int_list(optarg, 1, 100000, &num, 1, err, sizeof err) < 0)
                return nj_usage_error("bench", "--iters: %s", err);
            iters = (int)num;
            break;
        case 'c':
            csv_path = optarg;
            break;
        case 'J':
            out.json = 1;
            break;
        case 'O':
            want_overhead = 1;
            break;
        case 'h':
            fputs(help, stdout);
            return NJ_EXIT_OK;
        default:
            nj_parse_option_problem(c, optopt, argv[optind - 1], err, sizeof err);
            return nj_usage_error("bench", "%s", err);
        }
    }
    if (optind < argc)
        return nj_usage_error("bench", "unexpected argument '%s'", argv[optind]);
    if (!n_shapes) {
        for (si = 0; si < 6; si++) {
            snprintf(shapes[si].name, sizeof shapes[si].name, "%s", seed_shapes[si].name);
            snprintf(shapes[si].text, sizeof shapes[si].text, "%lldx%lldx%lld",
                     (long long)seed_shapes[si].b, (long long)seed_shapes[si].s,
                     (long long)seed_shapes[si].h);
            shapes[si].rows = seed_shapes[si].b * seed_shapes[si].s;
            shapes[si].hidden = seed_shapes[si].h;
        }
        n_shapes = 6;
    }

    if ((status = nj_bench_gpu_open(&g)) != NORMJIT_OK)
        return nj_report_failure("bench needs a GPU", status);
    memset(&copt, 0, sizeof copt);
    copt.struct_size = sizeof copt;
    copt.log = nj_tool_log;
    copt.log_level = NORMJIT_LOG_WARN;
    if ((status = normjit_ctx_create(&ctx, &copt)) != NORMJIT_OK) {
        nj_bench_gpu_close(&g);
        return nj_report_failure("bench", status);
    }
    if (want_overhead) {
        status = overhead(&g, ctx);
        normjit_ctx_destroy(ctx);
        nj_bench_gpu_close(&g);
        return status;
    }
    if (csv_path && !(out.csv = fopen(csv_path, "w"))) {
        fprintf(stderr, "normjit bench: cannot write %s\n", csv_path);
        normjit_ctx_destroy(ctx);
        nj_bench_gpu_close(&g);
        return NJ_EXIT_FAIL;
    }
    strftime(date, sizeof date, "%Y-%m-%d", localtime(&now));
    out.date = date;
    out.g = &g;
    out.copy_bw = nj_bench_copy_bandwidth(&g, (size_t)1 << 30, 50);
    if (!out.json) {
        printf("normjit %s bench on %s (sm_%d, %d SMs), %s\n", normjit_version_string(), g.name,
               g.arch, g.sms, date);
        printf("device copy: %.3f TB/s (1 GiB device-to-device, read + write, median of 50)\n\n",
               out.copy_bw * 1e-12);
        printf("| config | shape (BxSxH) | op | dtype | quant | ms | GB/s | %% of copy | "
               "same-size copy ms | %% of same-size copy | max error |\n");
        printf("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    }
    if (out.csv)
        fprintf(out.csv, "device,date,config,shape,rows,hidden,op,dtype,quant,ms,gbps,pct_copy,"
                         "same_size_copy_ms,pct_same_size_copy,max_error,copy_tbps\n");

    for (si = 0; si < n_shapes; si++)
        for (o = 0; o < n_ops; o++)
            for (q = 0; q < n_quants; q++)
                for (d = 0; d < n_dtypes; d++) {
                    bench_case bc;
                    const char *why;
                    memset(&bc, 0, sizeof bc);
                    bc.sh = &shapes[si];
                    bc.quant_code = quants[q];
                    if (!nj_tool_spec(&bc.op.s, ops[o], dtypes[d], quants[q], 0,
                                      shapes[si].hidden, &why))
                        continue; /* e.g. quantized QK-norm: no such kernel */
                    bc.op.rows = shapes[si].rows;
                    bc.op.heads = ops[o] == NORMJIT_OP_QK_RMSNORM ? heads : 1;
                    bc.op.bias = 1;
                    failed += run_case(&g, ctx, &out, &bc, iters);
                }
    if (out.json)
        printf("%s]\n", out.n_json ? "\n" : "[");
    if (out.csv)
        fclose(out.csv);
    normjit_ctx_destroy(ctx);
    nj_bench_gpu_close(&g);
    return failed ? NJ_EXIT_FAIL : NJ_EXIT_OK;
}
