/*
 * normjit tune: measure the launch knobs of each (op, dtype, epilogue, hidden
 * size) on this GPU and write the winners to the device's tuning table.
 *
 * The search space (nj_plan_candidates, nj_plan_grid_options) and the choice
 * among measured candidates (nj_tune_choose: one reduction layout for every
 * row-count bucket, for batch invariance) are library functions; this file
 * parses arguments, compiles candidates in parallel, checks each one's
 * output against the double-precision reference, times single cold calls,
 * and prints.
 */
#include "args.h"
#include "ctx.h"
#include "gpubench.h"
#include "hostref.h"
#include "ops.h"
#include "parse.h"
#include "plan.h"
#include "templates.h"
#include "tool.h"
#include "tune_policy.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ITEMS 64
#define MAX_CANDIDATES 400
#define MAX_GRIDS 4
#define ROWS_PER_BUCKET 2

static const char help[] =
    "usage: normjit tune [options]\n"
    "\n"
    "Measure the kernel knobs for each combination of operation, dtype and hidden\n"
    "size on GPU 0 and write the fastest to the GPU's tuning table, which the\n"
    "library reads before its shipped tables and its heuristic. Every candidate\n"
    "is checked against a double-precision reference before it is timed; each\n"
    "time is the median of single calls, each started with a cold L2.\n"
    "\n"
    "  --op LIST         rmsnorm,layernorm,add_rmsnorm,add_layernorm,qk_rmsnorm\n"
    "                    (default: rmsnorm,layernorm). The fused ops keep the\n"
    "                    reduction layout of their plain op (so they give its bits);\n"
    "                    tune the plain op first.\n"
    "  --dtype LIST      f16,bf16,f32: input, output and weight dtype (default: f16,bf16)\n"
    "  --quant LIST      none,fp8-tensor,fp8-token,int8-token,fp8-group128,... (default: none)\n"
    "  --hidden LIST     hidden sizes (default: 1024,2048,2880,3584,4096,5120,7168,\n"
    "                    8192,12288,16384)\n"
    "  --out FILE        the table to write (default: the GPU's file under\n"
    "                    NORMJIT_TUNING_DIR, else ~/.config/normjit/tuning)\n"
    "  --resume          keep the records already in --out and measure only the rest\n"
    "  --iters N         timed calls per measurement (default: 10)\n"
    "  --explore ROWS    time every candidate at ROWS rows and list them, fastest\n"
    "                    first (nothing is written)\n"
    "  --compile-only    only compile every candidate into the disk cache (with\n"
    "  --arch ARCH       --arch, no GPU is needed), to tune later without compiling\n"
    "  -j, --jobs N      parallel compilations (default: all cores)\n"
    "  -q, --quiet       no progress display\n";

typedef struct config {
    nj_spec s;
    int quant_code;
} config;

typedef struct tuner {
    normjit_ctx *ctx;
    nj_bench_gpu gpu;
    int iters, quiet, tty;
    int n_threads;
} tuner;

static void config_request(const config *c, int bucket, nj_request *r)
{
    r->s = c->s;
    r->vec = nj_widest_vec(&c->s);
    r->bucket = bucket;
}

static const char *config_name(const config *c, char *out, size_t size)
{
    snprintf(out, size, "%s %s%s%s hidden=%lld", nj_op_name(c->s.op), nj_dtype_name(c->s.tx),
             c->s.quant ? " " : "", c->s.quant ? nj_tool_quant_name(c->quant_code) : "",
             (long long)c->s.hidden);
    return out;
}

/*
 * The candidates of a configuration: every layout for an op that owns its
 * layout, else only the layout `planner` gives it (its plain op's).
 */
static int candidates_of(const config *c, int arch, const nj_planner *planner, nj_variant *out,
                         int max)
{
    const nj_op_desc *d = nj_op_desc_of(c->s.op);
    nj_request r;
    config_request(c, NJ_BUCKET_PREFILL, &r);
    if (d->layout_op != c->s.op || nj_spec_has_epilogue(&c->s)) {
        nj_plan plan;
        nj_planner_plan(planner, &r, &plan);
        return nj_plan_candidates(&r, arch, &plan.v.k, out, max);
    }
    return nj_plan_candidates(&r, arch, NULL, out, max);
}

/* ------------------------------------------------------------------------ */
/* Compiling many variants in parallel                                      */

typedef struct compile_pool {
    normjit_ctx *ctx;
    const nj_bench_gpu *gpu; /* NULL for a compile-only context */
    const nj_variant *variants;
    CUfunction *fns;
    int n, next, failed, compiled, cached;
    pthread_mutex_t mu;
} compile_pool;

static void *compile_worker(void *arg)
{
    compile_pool *p = arg;
    if (p->gpu)
        p->gpu->drv->ctx_push_current(p->gpu->cu);
    for (;;) {
        nj_got got = {NJ_GOT_IN_MEMORY, 1};
        int i, status;
        CUfunction fn = NULL;
        pthread_mutex_lock(&p->mu);
        i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->mu);
        if (i < 0)
            return NULL;
        status = nj_kernels_get(&p->ctx->kernels, &p->variants[i], &fn, &got);
        pthread_mutex_lock(&p->mu);
        if (status != NORMJIT_OK) {
            char name[NJ_KERNEL_NAME_MAX];
            nj_variant_name(&p->variants[i], name, sizeof name);
            fprintf(stderr, "normjit tune: %s: %s\n", name, normjit_last_error());
            p->failed++;
        }
        p->compiled += got.how == NJ_GOT_COMPILED;
        p->cached += got.how == NJ_GOT_FROM_DISK;
        if (p->fns)
            p->fns[i] = fn;
        pthread_mutex_unlock(&p->mu);
    }
}

static int compile_all(normjit_ctx *ctx, const nj_bench_gpu *gpu, const nj_variant *variants,
                       CUfunction *fns, int n, int n_threads, int *compiled, int *cached)
{
    compile_pool p;
    pthread_t *t = calloc((size_t)n_threads, sizeof *t);
    int i, started = 0;
    memset(&p, 0, sizeof p);
    p.ctx = ctx;
    p.gpu = gpu;
    p.variants = variants;
    p.fns = fns;
    p.n = n;
    pthread_mutex_init(&p.mu, NULL);
    for (i = 0; t && i < n_threads && i < n; i++)
        if (pthread_create(&t[i], NULL, compile_worker, &p) == 0)
            started++;
    if (!started)
        compile_worker(&p);
    for (i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    pthread_mutex_destroy(&p.mu);
    free(t);
    *compiled += p.compiled;
    *cached += p.cached;
    return p.failed;
}

/* ------------------------------------------------------------------------ */
/* Measuring                                                                */

typedef struct launch_user {
    const nj_driver *drv;
    nj_launch e;
    const nj_bench_op *op;
    const nj_bench_buffers *b;
} launch_user;

static int launch_candidate(void *user, int set, CUstream stream)
{
    launch_user *u = user;
    normjit_norm_args a;
    nj_call call;
    nj_params params;
    CUresult res;
    int status;
    nj_bench_args(u->op, u->b, set, &a);
    if ((status = nj_call_check(u->op->s.op, &a, &call)) != NORMJIT_OK)
        return status;
    nj_call_params(&call, &params);
    res = nj_launch_run(u->drv, &u->e, &params, 0, stream);
    return res == CUDA_SUCCESS ? NORMJIT_OK : nj_cu_fail(u->drv, res, "cuLaunchKernel");
}

/* Row counts measured for each bucket. */
static void bucket_rows(const config *c, const nj_bench_gpu *g, int64_t rows[NJ_BUCKETS][2])
{
    const double row_bytes = nj_spec_bytes(&c->s, 1, 0, 0);
    double cap = (double)g->total_mem / 4;
    int64_t large = (int64_t)ceil((256.0 * (1 << 20)) / row_bytes);
    if (cap > 8.0 * (1u << 30))
        cap = 8.0 * (1u << 30);
    if (large < 32768)
        large = 32768;
    if (large * row_bytes > cap)
        large = (int64_t)(cap / row_bytes);
    if (large <= NJ_PREFILL_MAX_ROWS)
        large = NJ_PREFILL_MAX_ROWS + 1;
    rows[NJ_BUCKET_DECODE][0] = 1;
    rows[NJ_BUCKET_DECODE][1] = 64;
    rows[NJ_BUCKET_PREFILL][0] = 512;
    rows[NJ_BUCKET_PREFILL][1] = 4096;
    rows[NJ_BUCKET_LARGE][0] = large;
    rows[NJ_BUCKET_LARGE][1] = 0;
}

/* Median time of single cold calls of a plan, in microseconds; < 0 on failure. */
static double measure(tuner *t, const nj_plan *p, CUfunction fn, const nj_bench_op *op,
                      const nj_bench_buffers *b)
{
    launch_user u;
    int status;
    double ms;
    u.drv = t->gpu.drv;
    u.op = op;
    u.b = b;
    nj_launch_init(&u.e, 0, p, fn, t->gpu.sms, t->gpu.arch, t->gpu.drv);
    ms = nj_bench_cold_median_ms(&t->gpu, launch_candidate, &u, b->sets, t->iters, &status);
    return ms < 0 ? -1 : ms * 1e3;
}

/* Run a plan once on set 0 and compare with the reference: 1 if right. */
static int correct(tuner *t, const nj_plan *p, CUfunction fn, const nj_bench_op *op,
                   const nj_bench_buffers *b, double *err)
{
    launch_user u = {t->gpu.drv, {0}, op, b};
    nj_launch_init(&u.e, 0, p, fn, t->gpu.sms, t->gpu.arch, t->gpu.drv);
    *err = launch_candidate(&u, 0, t->gpu.stream) == NORMJIT_OK
               ? nj_bench_check(&t->gpu, op, b)
               : -1;
    return *err >= 0 && *err <= nj_tolerance(op->s.ty);
}

static void progress(const tuner *t, int done, int total, const config *c, const char *what)
{
    int width = 30, filled = total ? done * width / total : width;
    char name[128];
    if (t->quiet || !t->tty)
        return;
    fprintf(stderr, "\r\033[K[%.*s%*s] %d/%d %s: %s", filled, "##############################",
            width - filled, "", done, total, config_name(c, name, sizeof name), what);
    fflush(stderr);
}

typedef struct outcome {
    config c;
    nj_knobs layout;
    double tuned_us[NJ_BUCKETS];
    double heuristic_us[NJ_BUCKETS];
    int failed; /* candidates excluded for wrong results; -1: kept from an earlier run */
} outcome;

/* Allocate the buffers of one row count, or say why not. */
static int bench_op_of(const config *c, int64_t rows, nj_bench_op *op)
{
    memset(op, 0, sizeof *op);
    op->s = c->s;
    op->rows = rows;
    op->heads = 1;
    op->bias = 1;
    return NORMJIT_OK;
}

/*
 * Measure every candidate (the last one: the heuristic's plan, as the
 * summary's baseline) over the buckets' row counts and grid sizes. Fills
 * res[i].us (mean over the bucket's row counts of the best grid).
 */
static int measure_all(tuner *t, const config *c, const nj_variant *cand, const CUfunction *fns,
                       int n, nj_tune_result *res, outcome *out, int done, int total)
{
    int64_t rows[NJ_BUCKETS][2];
    int i, b, k, o, status = NORMJIT_OK;
    char what[96];
    double (*sum)[MAX_GRIDS] = calloc((size_t)n, sizeof *sum);
    int *ok = calloc((size_t)n, sizeof *ok);

    if (!sum || !ok) {
        free(sum);
        free(ok);
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    }
    bucket_rows(c, &t->gpu, rows);
    for (i = 0; i < n; i++) {
        res[i].k = cand[i].k;
        ok[i] = fns[i] != NULL;
        for (b = 0; b < NJ_BUCKETS; b++)
            res[i].us[b] = INFINITY;
    }
    for (b = 0; b < NJ_BUCKETS && status == NORMJIT_OK; b++) {
        int grids[MAX_GRIDS], n_grids = nj_plan_grid_options(b, grids, MAX_GRIDS), n_rows = 0;
        memset(sum, 0, (size_t)n * sizeof *sum);
        for (k = 0; k < ROWS_PER_BUCKET && rows[b][k] > 0; k++, n_rows++) {
            nj_bench_op op;
            nj_bench_buffers buf;
            bench_op_of(c, rows[b][k], &op);
            if ((status = nj_bench_alloc(&t->gpu, &op, (uint64_t)(nj_now() * 1e6), &buf)) !=
                NORMJIT_OK)
                break;
            for (i = 0; i < n; i++) {
                nj_plan p;
                double err;
                if (!ok[i])
                    continue;
                snprintf(what, sizeof what, "%s rows=%lld, candidate %d/%d", nj_bucket_name(b),
                         (long long)rows[b][k], i + 1, n);
                progress(t, done, total, c, what);
                p.v = cand[i];
                p.ctas_per_sm = 0;
                /* Check the output before trusting any of its times. */
                if (b == NJ_BUCKET_PREFILL && k == 1 && !correct(t, &p, fns[i], &op, &buf, &err)) {
                    char name[NJ_KERNEL_NAME_MAX];
                    nj_variant_name(&cand[i], name, sizeof name);
                    fprintf(stderr, "\nnormjit tune: %s gives WRONG results (error %.3g); "
                                    "excluded\n",
                            name, err);
                    ok[i] = 0;
                    out->failed++;
                    continue;
                }
                for (o = 0; o < n_grids && ok[i]; o++) {
                    double us;
                    p.ctas_per_sm = grids[o];
                    if ((us = measure(t, &p, fns[i], &op, &buf)) < 0)
                        ok[i] = 0;
                    sum[i][o] += us;
                }
            }
            nj_bench_free(&t->gpu, &buf);
        }
        /* Each candidate's best grid for the bucket, over its row counts. */
        for (i = 0; i < n && n_rows; i++)
            for (o = 0; o < n_grids && ok[i]; o++)
                if (sum[i][o] / n_rows < res[i].us[b]) {
                    res[i].us[b] = sum[i][o] / n_rows;
                    res[i].ctas_per_sm[b] = grids[o];
                }
    }
    for (i = 0; i < n; i++)
        if (!ok[i])
            for (b = 0; b < NJ_BUCKETS; b++)
                res[i].us[b] = INFINITY;
    free(sum);
    free(ok);
    return status;
}

/* Tune one configuration; fills records into `table` and a line for the summary. */
static int tune_config(tuner *t, const config *c, nj_tuning *table, outcome *out, int done,
                       int total)
{
    nj_variant *cand = calloc(MAX_CANDIDATES + 1, sizeof *cand);
    CUfunction *fns = calloc(MAX_CANDIDATES + 1, sizeof *fns);
    nj_tune_result *res = calloc(MAX_CANDIDATES + 1, sizeof *res);
    int n, b, chosen[NJ_BUCKETS], compiled = 0, cached = 0, status;
    nj_request r;
    nj_plan heuristic;
    char name[128];

    memset(out, 0, sizeof *out);
    out->c = *c;
    if (!cand || !fns || !res) {
        status = nj_fail(NORMJIT_ENOMEM, "out of memory");
        goto out;
    }
    {
        /* The table being written comes first: a fused op takes the layout just tuned. */
        nj_planner p = t->ctx->planner;
        p.user = table;
        n = candidates_of(c, t->gpu.arch, &p, cand, MAX_CANDIDATES);
    }
    /* The heuristic's plan is measured last, as the baseline of the summary. */
    config_request(c, NJ_BUCKET_PREFILL, &r);
    nj_plan_heuristic(&r, t->gpu.arch, &heuristic);
    cand[n] = heuristic.v;
    progress(t, done, total, c, "compiling");
    compile_all(t->ctx, &t->gpu, cand, fns, n + 1, t->n_threads, &compiled, &cached);
    if ((status = measure_all(t, c, cand, fns, n + 1, res, out, done, total)) != NORMJIT_OK)
        goto out;
    if (!nj_tune_choose(res, n, chosen)) {
        status = nj_fail(NORMJIT_ECOMPILE, "no candidate for %s ran correctly",
                         config_name(c, name, sizeof name));
        goto out;
    }
    out->layout = res[chosen[0]].k;
    for (b = 0; b < NJ_BUCKETS; b++) {
        nj_tuning_record rec;
        memset(&rec, 0, sizeof rec);
        rec.plan.v = cand[chosen[b]];
        rec.plan.ctas_per_sm = res[chosen[b]].ctas_per_sm[b];
        rec.bucket = b;
        rec.us = res[chosen[b]].us[b];
        out->tuned_us[b] = rec.us;
        out->heuristic_us[b] = res[n].us[b];
        if ((status = nj_tuning_put(table, &rec)) != NORMJIT_OK)
            goto out;
    }
out:
    free(cand);
    free(fns);
    free(res);
    return status;
}

typedef struct explored {
    int index, ctas;
    double us;
} explored;

static int by_time(const void *a, const void *b)
{
    double x = ((const explored *)a)->us, y = ((const explored *)b)->us;
    return x < y ? -1 : x > y;
}

/*
 * --explore ROWS: time every candidate and grid size at exactly ROWS rows and
 * print them fastest first, with registers, local memory and occupancy; the
 * data behind the heuristic and the knob space (docs/PERFORMANCE.md).
 */
static int explore_config(tuner *t, const config *c, int64_t rows, int top)
{
    nj_variant *cand = calloc(MAX_CANDIDATES + 2, sizeof *cand);
    CUfunction *fns = calloc(MAX_CANDIDATES + 2, sizeof *fns);
    explored *res = calloc((MAX_CANDIDATES + 2) * MAX_GRIDS, sizeof *res);
    nj_plan plans[2];
    nj_bench_op op;
    nj_bench_buffers buf;
    nj_request r;
    int n, i, o, n_res = 0, compiled = 0, cached = 0, status;
    int grids[MAX_GRIDS], n_grids;
    double bytes;
    char name[128];

    if (!cand || !fns || !res) {
        free(cand);
        free(fns);
        free(res);
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    }
    bench_op_of(c, rows, &op);
    bytes = nj_bench_bytes(&op);
    n = candidates_of(c, t->gpu.arch, &t->ctx->planner, cand, MAX_CANDIDATES);
    config_request(c, nj_bucket_of_rows(rows), &r);
    nj_planner_plan(&t->ctx->planner, &r, &plans[0]); /* what the library uses now */
    nj_plan_heuristic(&r, t->gpu.arch, &plans[1]);
    cand[n++] = plans[0].v;
    cand[n++] = plans[1].v;
    n_grids = nj_plan_grid_options(nj_bucket_of_rows(rows), grids, MAX_GRIDS);
    compile_all(t->ctx, &t->gpu, cand, fns, n, t->n_threads, &compiled, &cached);
    if ((status = nj_bench_alloc(&t->gpu, &op, (uint64_t)(nj_now() * 1e6), &buf)) != NORMJIT_OK)
        goto out;
    for (i = 0; i < n; i++) {
        nj_plan p;
        double err;
        if (!fns[i])
            continue;
        p.v = cand[i];
        p.ctas_per_sm = 0;
        if (!correct(t, &p, fns[i], &op, &buf, &err)) {
            printf("WRONG RESULT (error %.3g) from candidate %d\n", err, i);
            continue;
        }
        for (o = 0; o < n_grids; o++) {
            /* The library's and the heuristic's plans as they are. */
            if (i >= n - 2 && o > 0)
                break;
            p.ctas_per_sm = i >= n - 2 ? plans[i - (n - 2)].ctas_per_sm : grids[o];
            res[n_res].index = i;
            res[n_res].ctas = p.ctas_per_sm;
            res[n_res].us = measure(t, &p, fns[i], &op, &buf);
            if (res[n_res].us > 0)
                n_res++;
        }
    }
    nj_bench_free(&t->gpu, &buf);
    qsort(res, (size_t)n_res, sizeof *res, by_time);
    printf("\n%s rows=%lld (%s bucket), %.1f MB moved, single cold calls\n",
           config_name(c, name, sizeof name), (long long)rows,
           nj_bucket_name(nj_bucket_of_rows(rows)), bytes / 1e6);
    printf("| rank | us | GB/s | tpr | rpc | cluster | occ | storage | grid ctas/SM | regs | local B | "
           "resident CTAs/SM | note |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |\n");
    for (i = 0; i < n_res; i++) {
        const nj_knobs *k = &cand[res[i].index].k;
        int regs = 0, local = 0, occ = 0;
        const char *note = res[i].index == n - 2 ? "library" : res[i].index == n - 1 ? "heuristic" : "";
        if (i >= top && !*note)
            continue;
        t->gpu.x->func_get_attribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, fns[res[i].index]);
        t->gpu.x->func_get_attribute(&local, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, fns[res[i].index]);
        t->gpu.x->occupancy_max_active_blocks(&occ, fns[res[i].index], k->tpr * k->rpc, 0);
        printf("| %d | %.2f | %.0f | %d | %d | %d | %d | %s | %d | %d | %d | %d | %s |\n", i + 1,
               res[i].us, bytes / (res[i].us * 1e-6) / 1e9, k->tpr, k->rpc, k->cluster, k->occ,
               nj_storage_name(k->storage), res[i].ctas, regs, local, occ,
               note);
    }
    fflush(stdout);
out:
    free(cand);
    free(fns);
    free(res);
    return status;
}

/* Write the table next to its final name, then rename it there. */
static int save_table(const nj_tuning *table, const char *path)
{
    char tmp[4200], dir[4096];
    const char *slash = strrchr(path, '/');
    FILE *f;
    int status;
    if (slash && slash != path) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if (nj_mkdir_p(dir, 0755) != 0)
            return nj_fail(NORMJIT_EIO, "cannot create %s: %s", dir, strerror(errno));
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "w")))
        return nj_fail(NORMJIT_EIO, "cannot write %s: %s", tmp, strerror(errno));
    status = nj_tuning_write(table, f);
    if (fclose(f) != 0 && status == NORMJIT_OK)
        status = nj_fail(NORMJIT_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (status == NORMJIT_OK && rename(tmp, path) != 0)
        status = nj_fail(NORMJIT_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (status != NORMJIT_OK)
        unlink(tmp);
    return status;
}

static int has_all_buckets(const nj_tuning *table, const config *c)
{
    nj_request r;
    nj_plan p;
    int b;
    for (b = 0; b < NJ_BUCKETS; b++) {
        config_request(c, b, &r);
        if (!nj_tuning_lookup(table, &r, &p))
            return 0;
    }
    return 1;
}

/* --compile-only: every candidate of every configuration into the disk cache. */
static int compile_only(const config *configs, int n_configs, int arch, const char *cache_dir,
                        int n_threads)
{
    normjit_ctx *ctx;
    normjit_ctx_options o;
    nj_variant *variants = calloc((size_t)n_configs * (MAX_CANDIDATES + 1), sizeof *variants);
    int n = 0, i, failed, compiled = 0, cached = 0, status;
    nj_request r;
    nj_plan heuristic;
    double t0 = nj_now();

    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.offline_arch = arch;
    o.cache_dir = cache_dir;
    o.log = nj_tool_log;
    o.log_level = NORMJIT_LOG_WARN;
    if (!variants)
        return NJ_EXIT_FAIL;
    if ((status = normjit_ctx_create(&ctx, &o)) != NORMJIT_OK) {
        free(variants);
        return nj_report_failure("tune --compile-only", status);
    }
    for (i = 0; i < n_configs; i++) {
        n += candidates_of(&configs[i], arch, &ctx->planner, variants + n, MAX_CANDIDATES);
        config_request(&configs[i], NJ_BUCKET_PREFILL, &r);
        nj_plan_heuristic(&r, arch, &heuristic);
        variants[n++] = heuristic.v;
    }
    failed = compile_all(ctx, NULL, variants, NULL, n, n_threads, &compiled, &cached);
    printf("tune --compile-only: %d candidates for sm_%d in %.1f s: %d compiled, %d already "
           "cached%s; cache %s\n",
           n, arch, nj_now() - t0, compiled, cached, failed ? ", SOME FAILED" : "",
           normjit_ctx_cache_dir(ctx));
    normjit_ctx_destroy(ctx);
    free(variants);
    return failed ? NJ_EXIT_FAIL : NJ_EXIT_OK;
}

static void print_summary(const outcome *results, int n_configs)
{
    int i;
    char name[128];
    printf("\n| configuration | tpr | cluster | storage | decode us | prefill us | large us | "
           "vs heuristic (decode/prefill/large) |\n"
           "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |\n");
    for (i = 0; i < n_configs; i++) {
        const outcome *r = &results[i];
        if (r->failed < 0) {
            printf("| %s | kept from the earlier run |||||||\n",
                   config_name(&r->c, name, sizeof name));
            continue;
        }
        if (!r->layout.tpr)
            continue;
        printf("| %s | %d | %d | %s | %.2f | %.2f | %.2f | %.2fx / %.2fx / %.2fx |\n",
               config_name(&r->c, name, sizeof name), r->layout.tpr, r->layout.cluster,
               nj_storage_name(r->layout.storage), r->tuned_us[0],
               r->tuned_us[1], r->tuned_us[2], r->heuristic_us[0] / r->tuned_us[0],
               r->heuristic_us[1] / r->tuned_us[1], r->heuristic_us[2] / r->tuned_us[2]);
    }
}

int nj_cmd_tune(int argc, char **argv)
{
    static const struct option opts[] = {
        {"op", required_argument, NULL, 'o'},      {"dtype", required_argument, NULL, 'd'},
        {"hidden", required_argument, NULL, 'H'},  {"out", required_argument, NULL, 'O'},
        {"resume", no_argument, NULL, 'r'},        {"iters", required_argument, NULL, 'i'},
        {"compile-only", no_argument, NULL, 'C'},  {"arch", required_argument, NULL, 'a'},
        {"cache-dir", required_argument, NULL, 'c'}, {"jobs", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {"explore", required_argument, NULL, 'e'}, {"quant", required_argument, NULL, 'Q'},
        {NULL, 0, NULL, 0}};
    int ops[8] = {NORMJIT_OP_RMSNORM, NORMJIT_OP_LAYERNORM}, n_ops = 2;
    int dtypes[3] = {NORMJIT_DTYPE_F16, NORMJIT_DTYPE_BF16}, n_dtypes = 2;
    int quants[16] = {1}, n_quants = 1;
    int64_t hidden[MAX_ITEMS] = {1024, 2048, 2880, 3584, 4096, 5120, 7168, 8192, 12288, 16384};
    int n_hidden = 10, resume = 0, only_compile = 0, arch = 0, c, i, d, h, q, n_configs = 0;
    int status = NORMJIT_OK;
    int64_t explore_rows = 0;
    int64_t num;
    const char *out_path = NULL, *cache_dir = NULL;
    char *default_path = NULL, err[256];
    config *configs;
    outcome *results;
    nj_tuning *table = NULL;
    normjit_ctx_options o;
    const nj_templates *templates;
    tuner t;
    double t0;

    memset(&t, 0, sizeof t);
    t.iters = 10;
    t.n_threads = nj_cpu_count();
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if ((n_ops = nj_parse_name_list(optarg, nj_op_parse, "op", ops, 8, err,
                                            sizeof err)) < 0)
                return nj_usage_error("tune", "--op: %s", err);
            break;
        case 'd':
            if ((n_dtypes = nj_parse_name_list(optarg, nj_dtype_parse, "dtype", dtypes, 3, err,
                                               sizeof err)) < 0)
                return nj_usage_error("tune", "--dtype: %s", err);
            for (d = 0; d < n_dtypes; d++)
                if (!nj_dtype_is_float(dtypes[d]))
                    return nj_usage_error("tune", "--dtype: f16, bf16 or f32");
            break;
        case 'Q':
            if ((n_quants = nj_parse_name_list(optarg, nj_tool_quant_code, "quant", quants, 16,
                                               err, sizeof err)) < 0)
                return nj_usage_error("tune", "--quant: %s", err);
            break;
        case 'H':
            if ((n_hidden = nj_parse_int_list(optarg, 1, NJ_MAX_HIDDEN, hidden, MAX_ITEMS, err,
                                              sizeof err)) < 0)
                return nj_usage_error("tune", "--hidden: %s", err);
            break;
        case 'O':
            out_path = optarg;
            break;
        case 'r':
            resume = 1;
            break;
        case 'i':
            if (nj_parse_int_list(optarg, 3, 10000, &num, 1, err, sizeof err) < 0)
                return nj_usage_error("tune", "--iters: %s", err);
            t.iters = (int)num;
            break;
        case 'C':
            only_compile = 1;
            break;
        case 'e':
            if (nj_parse_int_list(optarg, 1, 1ll << 32, &explore_rows, 1, err, sizeof err) < 0)
                return nj_usage_error("tune", "--explore: %s", err);
            break;
        case 'a':
            if (nj_parse_arch(optarg, &arch, err, sizeof err))
                return nj_usage_error("tune", "--arch: %s", err);
            break;
        case 'c':
            cache_dir = optarg;
            break;
        case 'j':
            if (nj_parse_int_list(optarg, 1, 1024, &num, 1, err, sizeof err) < 0)
                return nj_usage_error("tune", "--jobs: %s", err);
            t.n_threads = (int)num;
            break;
        case 'q':
            t.quiet = 1;
            break;
        case 'h':
            fputs(help, stdout);
            return NJ_EXIT_OK;
        default:
            nj_parse_option_problem(c, optopt, argv[optind - 1], err, sizeof err);
            return nj_usage_error("tune", "%s", err);
        }
    }
    if (optind < argc)
        return nj_usage_error("tune", "unexpected argument '%s'", argv[optind]);
    if (arch && !only_compile)
        return nj_usage_error("tune", "--arch goes with --compile-only (tuning uses GPU 0)");
    if (only_compile && !arch)
        return nj_usage_error("tune", "--compile-only needs --arch (e.g. sm_90)");

    configs = calloc((size_t)(n_ops * n_dtypes * n_hidden * n_quants), sizeof *configs);
    results = calloc((size_t)(n_ops * n_dtypes * n_hidden * n_quants), sizeof *results);
    if (!configs || !results)
        return NJ_EXIT_FAIL;
    /* Plain ops first: the fused ones take their layout from them. */
    for (i = 0; i < n_ops; i++)
        for (q = 0; q < n_quants; q++)
            for (d = 0; d < n_dtypes; d++)
                for (h = 0; h < n_hidden; h++) {
                    const char *why;
                    config *cf = &configs[n_configs];
                    if (!nj_tool_spec(&cf->s, ops[i], dtypes[d], quants[q], 0, hidden[h], &why))
                        continue;
                    cf->quant_code = quants[q];
                    n_configs++;
                }
    if (only_compile) {
        status = compile_only(configs, n_configs, arch, cache_dir, t.n_threads);
        free(configs);
        free(results);
        return status;
    }

    if ((status = nj_bench_gpu_open(&t.gpu)) != NORMJIT_OK)
        return nj_report_failure("tune needs a GPU (use --compile-only --arch to compile only)",
                                 status);
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.cache_dir = cache_dir;
    o.log = nj_tool_log;
    o.log_level = NORMJIT_LOG_WARN;
    if ((status = normjit_ctx_create(&t.ctx, &o)) != NORMJIT_OK ||
        (status = nj_templates_get(&templates)) != NORMJIT_OK) {
        nj_bench_gpu_close(&t.gpu);
        return nj_report_failure("tune", status);
    }
    if (explore_rows) {
        for (i = 0; i < n_configs; i++)
            if ((status = explore_config(&t, &configs[i], explore_rows, 12)) != NORMJIT_OK)
                nj_report_failure("tune --explore", status);
        normjit_ctx_destroy(t.ctx);
        nj_bench_gpu_close(&t.gpu);
        free(configs);
        free(results);
        return NJ_EXIT_OK;
    }
    if (!out_path) {
        if ((status = nj_tuning_default_path(&t.ctx->device, &default_path)) != NORMJIT_OK)
            return nj_report_failure("tune", status);
        out_path = default_path;
    }
    if (resume && access(out_path, F_OK) == 0) {
        if ((status = nj_tuning_load(out_path, &table)) != NORMJIT_OK)
            return nj_report_failure("tune --resume", status);
        if (!nj_tuning_matches(table, &t.ctx->device)) {
            fprintf(stderr, "normjit tune: %s was measured on %s, not on this %s\n", out_path,
                    table->device.name, t.ctx->device.name);
            return NJ_EXIT_FAIL;
        }
        table->device = t.ctx->device;
        snprintf(table->library, sizeof table->library, "%s", NORMJIT_VERSION_STRING);
        snprintf(table->templates, sizeof table->templates, "%s", templates->digest);
    } else {
        table = nj_tuning_new(&t.ctx->device, NORMJIT_VERSION_STRING, templates->digest);
        if (!table)
            return NJ_EXIT_FAIL;
    }
    t.tty = isatty(STDERR_FILENO);
    t0 = nj_now();
    printf("normjit tune on %s (sm_%d, %d SMs): %d configurations -> %s\n", t.gpu.name,
           t.gpu.arch, t.gpu.sms, n_configs, out_path);
    fflush(stdout);
    for (i = 0; i < n_configs && status == NORMJIT_OK; i++) {
        char name[128];
        if (resume && has_all_buckets(table, &configs[i])) {
            results[i].c = configs[i];
            results[i].failed = -1; /* kept from the earlier run */
            continue;
        }
        status = tune_config(&t, &configs[i], table, &results[i], i, n_configs);
        if (status == NORMJIT_OK)
            status = save_table(table, out_path);
        if (status != NORMJIT_OK)
            nj_report_failure("tune", status);
        else if (!t.tty || t.quiet)
            printf("tuned %s\n", config_name(&configs[i], name, sizeof name));
        fflush(stdout);
    }
    if (t.tty && !t.quiet)
        fprintf(stderr, "\r\033[K");
    print_summary(results, n_configs);
    printf("\ntune: %d configurations in %.0f s; table %s (%zu records)\n", n_configs,
           nj_now() - t0, out_path, table->n);
    nj_tuning_free(table);
    free(default_path);
    free(configs);
    free(results);
    normjit_ctx_destroy(t.ctx);
    nj_bench_gpu_close(&t.gpu);
    return status == NORMJIT_OK ? NJ_EXIT_OK : NJ_EXIT_FAIL;
}
