/*
 * normjit tune: measure the launch knobs of each (op, dtype, hidden size) on
 * this GPU and write the winners to the device's tuning table.
 *
 * For each configuration the tuner tries every layout (threads per row,
 * cluster size, storage) with its rows-per-CTA and grid-size options, checks
 * each candidate's output against the double-precision reference, and times
 * it over three row-count buckets (decode, prefill, large) with a cold L2.
 * One layout serves all buckets, so that a row's result never depends on
 * the batch (batch invariance): the one whose times, relative to the best
 * layout of each bucket, sum to the least. Each bucket then keeps its own
 * fastest rows-per-CTA and grid size for that layout.
 */
#include "ctx.h"
#include "gpubench.h"
#include "hostref.h"
#include "parse.h"
#include "templates.h"
#include "tool.h"

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
#define MAX_LAYOUTS 64
#define MAX_CANDIDATES (MAX_LAYOUTS * 6)
#define ROWS_PER_BUCKET 2

static const char help[] =
    "usage: normjit tune [options]\n"
    "\n"
    "Measure the kernel knobs for each combination of operation, dtype and hidden\n"
    "size on GPU 0 and write the fastest to the GPU's tuning table, which the\n"
    "library reads before its shipped tables and its heuristic. Every candidate\n"
    "is checked against a double-precision reference before it is timed.\n"
    "\n"
    "  --op LIST         rmsnorm,layernorm (default: both)\n"
    "  --dtype LIST      f16,bf16,f32: input, output and weight dtype (default: f16,bf16)\n"
    "  --hidden LIST     hidden sizes (default: 1024,2048,2880,3584,4096,5120,7168,\n"
    "                    8192,12288,16384)\n"
    "  --out FILE        the table to write (default: the GPU's file under\n"
    "                    NORMJIT_TUNING_DIR, else ~/.config/normjit/tuning)\n"
    "  --resume          keep the records already in --out and measure only the rest\n"
    "  --iters N         timed launches per measurement (default: 10)\n"
    "  --explore ROWS    time every candidate at ROWS rows and list them, fastest\n"
    "                    first (nothing is written)\n"
    "  --compile-only    only compile every candidate into the disk cache (with\n"
    "  --arch ARCH       --arch, no GPU is needed), to tune later without compiling\n"
    "  -j, --jobs N      parallel compilations (default: all cores)\n"
    "  -q, --quiet       no progress display\n";

typedef struct config {
    int op, dtype;
    int64_t hidden;
} config;

typedef struct candidate {
    nj_plan plan; /* ctas_per_sm filled per measurement */
    CUfunction fn;
    int ok;
    double best_us[NJ_BUCKETS];
    int best_ctas[NJ_BUCKETS];
} candidate;

typedef struct tuner {
    normjit_ctx *ctx;
    nj_bench_gpu gpu;
    int iters, quiet, tty;
    int n_threads;
} tuner;

/* ------------------------------------------------------------------------ */
/* Candidates                                                               */

static int widest_vec(int dtype, int64_t hidden)
{
    int vec = NJ_MAX_ACCESS_BYTES / nj_dtype_size(dtype);
    while (hidden % vec)
        vec /= 2;
    return vec;
}

static void request_of(const config *c, int bucket, nj_request *r)
{
    r->op = c->op;
    r->tx = r->ty = r->tw = c->dtype;
    r->vec = widest_vec(c->dtype, c->hidden);
    r->bucket = bucket;
    r->hidden = c->hidden;
}

static int candidates_of(const config *c, int arch, candidate *out)
{
    nj_knobs layouts[MAX_LAYOUTS];
    nj_request r;
    int n_layouts, i, j, n = 0, rpcs[4], n_rpc;
    request_of(c, NJ_BUCKET_PREFILL, &r);
    n_layouts = nj_plan_layouts(&r, arch, layouts, MAX_LAYOUTS);
    for (i = 0; i < n_layouts; i++) {
        n_rpc = nj_plan_rpc_options(layouts[i].tpr, rpcs);
        for (j = 0; j < n_rpc && n + 1 < MAX_CANDIDATES; j++) {
            candidate *k = &out[n];
            int occ;
            memset(k, 0, sizeof *k);
            nj_plan_heuristic(&r, arch, &k->plan); /* op, dtypes, hidden */
            k->plan.v.k = layouts[i];
            k->plan.v.k.rpc = rpcs[j];
            k->plan.ctas_per_sm = 0;
            if (nj_variant_check(&k->plan.v, arch) != NORMJIT_OK)
                continue;
            n++;
            /* The same with an occupancy asked of the compiler. */
            if ((occ = nj_plan_occ_target(&k->plan.v)) > 0) {
                out[n] = *k;
                out[n].plan.v.k.occ = occ;
                n++;
            }
        }
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Compiling many variants in parallel                                      */

typedef struct compile_pool {
    normjit_ctx *ctx;
    const nj_bench_gpu *gpu; /* NULL for a compile-only context */
    nj_variant *variants;
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
        int i, got = NJ_GOT_IN_MEMORY, status;
        CUfunction fn = NULL;
        pthread_mutex_lock(&p->mu);
        i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->mu);
        if (i < 0)
            return NULL;
        status = nj_kernels_get_variant(p->ctx, &p->variants[i], &fn, &got);
        pthread_mutex_lock(&p->mu);
        if (status != NORMJIT_OK) {
            char name[128];
            nj_variant_name(&p->variants[i], name, sizeof name);
            fprintf(stderr, "normjit tune: %s: %s\n", name, normjit_last_error());
            p->failed++;
        }
        p->compiled += got == NJ_GOT_COMPILED || got == NJ_GOT_UNCACHED;
        p->cached += got == NJ_GOT_FROM_DISK;
        if (p->fns)
            p->fns[i] = fn;
        pthread_mutex_unlock(&p->mu);
    }
}

static int compile_all(normjit_ctx *ctx, const nj_bench_gpu *gpu, nj_variant *variants,
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
    CUresult res;
    nj_bench_args(u->op, u->b, set, &a);
    a.x_row_stride = a.y_row_stride = a.hidden;
    res = nj_launch_run(u->drv, &u->e, &a, stream);
    return res == CUDA_SUCCESS ? NORMJIT_OK : nj_cu_fail(u->drv, res, "cuLaunchKernel");
}

/* Row counts measured for each bucket. */
static void bucket_rows(const config *c, const nj_bench_gpu *g, int64_t rows[NJ_BUCKETS][2])
{
    const double row_bytes = (double)c->hidden * 2 * nj_dtype_size(c->dtype);
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

/* Median time of a plan on one buffer set group, in microseconds; < 0 on failure. */
static double measure(tuner *t, const nj_plan *p, CUfunction fn, const nj_bench_op *op,
                      const nj_bench_buffers *b)
{
    launch_user u;
    int status;
    double ms;
    u.drv = t->gpu.drv;
    u.op = op;
    u.b = b;
    nj_launch_init(&u.e, 0, p, fn, t->gpu.sms);
    ms = nj_bench_median_ms(&t->gpu, launch_candidate, &u, b->sets, 2, t->iters, &status);
    return ms < 0 ? -1 : ms * 1e3;
}

static void progress(const tuner *t, int done, int total, const config *c, const char *what)
{
    int width = 30, filled = total ? done * width / total : width;
    if (t->quiet || !t->tty)
        return;
    fprintf(stderr, "\r\033[K[%.*s%*s] %d/%d %s %s hidden=%lld: %s", filled,
            "##############################", width - filled, "", done, total,
            nj_op_name(c->op), nj_dtype_name(c->dtype), (long long)c->hidden, what);
    fflush(stderr);
}

typedef struct outcome {
    config c;
    nj_knobs layout;
    double tuned_us[NJ_BUCKETS];
    double heuristic_us[NJ_BUCKETS];
    int failed;
} outcome;

/* Tune one configuration; fills records into `table` and a line for the summary. */
static int tune_config(tuner *t, const config *c, nj_tuning *table, outcome *res, int done,
                       int total)
{
    candidate *cand = calloc(MAX_CANDIDATES + 1, sizeof *cand);
    nj_variant *variants = calloc(MAX_CANDIDATES + 1, sizeof *variants);
    CUfunction *fns = calloc(MAX_CANDIDATES + 1, sizeof *fns);
    static const int ctas_options[] = {0, 2, 8};
    int64_t rows[NJ_BUCKETS][2];
    double best_bucket[NJ_BUCKETS], score, best_score = INFINITY;
    int n, i, b, k, o, chosen = -1, compiled = 0, cached = 0, status = NORMJIT_OK;
    nj_request r;
    char what[96];

    memset(res, 0, sizeof *res);
    res->c = *c;
    if (!cand || !variants || !fns) {
        free(cand);
        free(variants);
        free(fns);
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    }
    n = candidates_of(c, t->gpu.arch, cand);
    /* The heuristic's own plan is measured too, as the baseline of the summary. */
    request_of(c, NJ_BUCKET_PREFILL, &r);
    nj_plan_heuristic(&r, t->gpu.arch, &cand[n].plan);
    n++;
    for (i = 0; i < n; i++)
        variants[i] = cand[i].plan.v;
    progress(t, done, total, c, "compiling");
    compile_all(t->ctx, &t->gpu, variants, fns, n, t->n_threads, &compiled, &cached);
    for (i = 0; i < n; i++) {
        cand[i].fn = fns[i];
        cand[i].ok = fns[i] != NULL;
        for (b = 0; b < NJ_BUCKETS; b++)
            cand[i].best_us[b] = INFINITY;
    }
    bucket_rows(c, &t->gpu, rows);

    for (b = 0; b < NJ_BUCKETS; b++) {
        static double sum[MAX_CANDIDATES + 1][3]; /* per candidate and grid option */
        memset(sum, 0, sizeof sum);
        for (k = 0; k < ROWS_PER_BUCKET && rows[b][k] > 0; k++) {
            nj_bench_op op = {c->op, c->dtype, c->dtype, c->dtype, rows[b][k], c->hidden, 1};
            nj_bench_buffers buf;
            if ((status = nj_bench_alloc(&t->gpu, &op, (uint64_t)(nj_now() * 1e6), &buf)) !=
                NORMJIT_OK)
                goto out;
            for (i = 0; i < n; i++) {
                if (!cand[i].ok)
                    continue;
                snprintf(what, sizeof what, "%s rows=%lld, candidate %d/%d",
                         nj_bucket_name(b), (long long)rows[b][k], i + 1, n);
                progress(t, done, total, c, what);
                if (b == NJ_BUCKET_PREFILL && k == 1) {
                    /* Check the output before trusting any of its times. */
                    launch_user u = {t->gpu.drv, {0}, &op, &buf};
                    double err;
                    nj_launch_init(&u.e, 0, &cand[i].plan, cand[i].fn, t->gpu.sms);
                    err = launch_candidate(&u, 0, t->gpu.stream) == NORMJIT_OK
                              ? nj_bench_check(&t->gpu, &op, &buf)
                              : -1;
                    if (!(err >= 0) || err > nj_tolerance(op.ty)) {
                        char name[128];
                        nj_variant_name(&cand[i].plan.v, name, sizeof name);
                        fprintf(stderr, "\nnormjit tune: %s gives WRONG results (error %.3g); "
                                        "excluded\n",
                                name, err);
                        cand[i].ok = 0;
                        res->failed++;
                        continue;
                    }
                }
                for (o = 0; o < 3; o++) {
                    nj_plan p = cand[i].plan;
                    double us;
                    if (o > 0 && b == NJ_BUCKET_DECODE)
                        break; /* a few rows never fill a persistent grid */
                    p.ctas_per_sm = ctas_options[o];
                    us = measure(t, &p, cand[i].fn, &op, &buf);
                    if (us < 0) {
                        cand[i].ok = 0;
                        break;
                    }
                    sum[i][o] += us;
                }
            }
            nj_bench_free(&t->gpu, &buf);
            /* Once all row counts of the bucket are measured, keep each candidate's best grid. */
            if (k + 1 == ROWS_PER_BUCKET || rows[b][k + 1] == 0) {
                for (i = 0; i < n; i++) {
                    if (!cand[i].ok)
                        continue;
                    for (o = 0; o < 3 && (o == 0 || b != NJ_BUCKET_DECODE); o++)
                        if (sum[i][o] / (k + 1) < cand[i].best_us[b]) {
                            cand[i].best_us[b] = sum[i][o] / (k + 1);
                            cand[i].best_ctas[b] = ctas_options[o];
                        }
                }
            }
        }
    }

    /* One layout for every bucket: least total slowdown against each bucket's best. */
    for (b = 0; b < NJ_BUCKETS; b++) {
        best_bucket[b] = INFINITY;
        for (i = 0; i < n - 1; i++)
            if (cand[i].ok && cand[i].best_us[b] < best_bucket[b])
                best_bucket[b] = cand[i].best_us[b];
    }
    for (i = 0; i < n - 1; i++) {
        /* A layout's rpc choices are separate candidates; any of them may serve a bucket. */
        double per_bucket[NJ_BUCKETS];
        int j;
        if (!cand[i].ok)
            continue;
        for (b = 0; b < NJ_BUCKETS; b++) {
            per_bucket[b] = INFINITY;
            for (j = 0; j < n - 1; j++)
                if (cand[j].ok && cand[j].plan.v.k.tpr == cand[i].plan.v.k.tpr &&
                    cand[j].plan.v.k.cluster == cand[i].plan.v.k.cluster &&
                    cand[j].plan.v.k.storage == cand[i].plan.v.k.storage &&
                    cand[j].best_us[b] < per_bucket[b])
                    per_bucket[b] = cand[j].best_us[b];
        }
        score = 0;
        for (b = 0; b < NJ_BUCKETS; b++)
            score += per_bucket[b] / best_bucket[b];
        if (score < best_score) {
            best_score = score;
            chosen = i;
        }
    }
    if (chosen < 0) {
        status = nj_fail(NORMJIT_ECOMPILE, "no candidate for %s %s hidden %lld ran correctly",
                         nj_op_name(c->op), nj_dtype_name(c->dtype), (long long)c->hidden);
        goto out;
    }
    res->layout = cand[chosen].plan.v.k;
    for (b = 0; b < NJ_BUCKETS; b++) {
        nj_tuning_record rec;
        int best = -1, j;
        for (j = 0; j < n - 1; j++)
            if (cand[j].ok && cand[j].plan.v.k.tpr == res->layout.tpr &&
                cand[j].plan.v.k.cluster == res->layout.cluster &&
                cand[j].plan.v.k.storage == res->layout.storage &&
                (best < 0 || cand[j].best_us[b] < cand[best].best_us[b]))
                best = j;
        rec.plan = cand[best].plan;
        rec.plan.ctas_per_sm = cand[best].best_ctas[b];
        rec.bucket = b;
        rec.us = cand[best].best_us[b];
        res->tuned_us[b] = rec.us;
        res->heuristic_us[b] = cand[n - 1].best_us[b];
        if ((status = nj_tuning_put(table, &rec)) != NORMJIT_OK)
            goto out;
    }
out:
    free(cand);
    free(variants);
    free(fns);
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
    static const int ctas_options[] = {0, 1, 2, 4, 8};
    candidate *cand = calloc(MAX_CANDIDATES + 1, sizeof *cand);
    nj_variant *variants = calloc(MAX_CANDIDATES + 1, sizeof *variants);
    CUfunction *fns = calloc(MAX_CANDIDATES + 1, sizeof *fns);
    explored *res = calloc((MAX_CANDIDATES + 1) * 5, sizeof *res);
    nj_bench_op op = {c->op, c->dtype, c->dtype, c->dtype, rows, c->hidden, 1};
    nj_bench_buffers buf;
    nj_request r;
    int n, i, o, n_res = 0, compiled = 0, cached = 0, status;
    double bytes = nj_bench_bytes(&op);

    if (!cand || !variants || !fns || !res)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    n = candidates_of(c, t->gpu.arch, cand);
    request_of(c, nj_bucket_of_rows(rows), &r);
    nj_ctx_plan(t->ctx, &r, &cand[n++].plan);      /* what the library uses now */
    nj_plan_heuristic(&r, t->gpu.arch, &cand[n++].plan);
    for (i = 0; i < n; i++)
        variants[i] = cand[i].plan.v;
    compile_all(t->ctx, &t->gpu, variants, fns, n, t->n_threads, &compiled, &cached);
    if ((status = nj_bench_alloc(&t->gpu, &op, (uint64_t)(nj_now() * 1e6), &buf)) != NORMJIT_OK)
        goto out;
    for (i = 0; i < n; i++) {
        launch_user u = {t->gpu.drv, {0}, &op, &buf};
        double err;
        if (!fns[i])
            continue;
        nj_launch_init(&u.e, 0, &cand[i].plan, fns[i], t->gpu.sms);
        err = launch_candidate(&u, 0, t->gpu.stream) == NORMJIT_OK ? nj_bench_check(&t->gpu, &op, &buf) : -1;
        if (!(err >= 0) || err > nj_tolerance(op.ty)) {
            printf("WRONG RESULT (error %.3g) from candidate %d\n", err, i);
            continue;
        }
        for (o = 0; o < 5; o++) {
            nj_plan p = cand[i].plan;
            if (i >= n - 2 && o > 0)
                break; /* the library's and the heuristic's plans as they are */
            p.ctas_per_sm = i >= n - 2 ? cand[i].plan.ctas_per_sm : ctas_options[o];
            res[n_res].index = i;
            res[n_res].ctas = p.ctas_per_sm;
            res[n_res].us = measure(t, &p, fns[i], &op, &buf);
            if (res[n_res].us > 0)
                n_res++;
        }
    }
    nj_bench_free(&t->gpu, &buf);
    qsort(res, (size_t)n_res, sizeof *res, by_time);
    printf("\n%s %s hidden=%lld rows=%lld (%s bucket), %.1f MB moved\n", nj_op_name(c->op),
           nj_dtype_name(c->dtype), (long long)c->hidden, (long long)rows,
           nj_bucket_name(nj_bucket_of_rows(rows)), bytes / 1e6);
    printf("| rank | us | GB/s | tpr | rpc | cluster | occ | storage | grid ctas/SM | regs | local B | "
           "resident CTAs/SM | note |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |\n");
    for (i = 0; i < n_res; i++) {
        const candidate *k = &cand[res[i].index];
        int regs = 0, local = 0, occ = 0;
        const char *note = res[i].index == n - 2 ? "library" : res[i].index == n - 1 ? "heuristic" : "";
        if (i >= top && !*note)
            continue;
        t->gpu.drv->func_get_attribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, fns[res[i].index]);
        t->gpu.drv->func_get_attribute(&local, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, fns[res[i].index]);
        t->gpu.drv->occupancy_max_active_blocks(&occ, fns[res[i].index],
                                                k->plan.v.k.tpr * k->plan.v.k.rpc, 0);
        printf("| %d | %.2f | %.0f | %d | %d | %d | %d | %s | %d | %d | %d | %d | %s |\n", i + 1,
               res[i].us, bytes / (res[i].us * 1e-6) / 1e9, k->plan.v.k.tpr, k->plan.v.k.rpc,
               k->plan.v.k.cluster, k->plan.v.k.occ,
               k->plan.v.k.storage == NJ_STORAGE_REG ? "reg" : "stream",
               res[i].ctas, regs, local, occ, note);
    }
    fflush(stdout);
out:
    free(cand);
    free(variants);
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
        request_of(c, b, &r);
        if (!nj_tuning_lookup(table, &r, table->device.cc, &p))
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
    candidate *cand = calloc(MAX_CANDIDATES + 1, sizeof *cand);
    int n = 0, i, j, m, failed, compiled = 0, cached = 0, status;
    nj_request r;
    double t0 = nj_now();

    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.offline_arch = arch;
    o.cache_dir = cache_dir;
    o.log = nj_tool_log;
    o.log_level = NORMJIT_LOG_WARN;
    if (!variants || !cand)
        return NJ_EXIT_FAIL;
    if ((status = normjit_ctx_create(&ctx, &o)) != NORMJIT_OK)
        return nj_report_failure("tune --compile-only", status);
    for (i = 0; i < n_configs; i++) {
        m = candidates_of(&configs[i], arch, cand);
        for (j = 0; j < m; j++)
            variants[n++] = cand[j].plan.v;
        request_of(&configs[i], NJ_BUCKET_PREFILL, &r);
        nj_plan_heuristic(&r, arch, &cand[0].plan);
        variants[n++] = cand[0].plan.v;
    }
    failed = compile_all(ctx, NULL, variants, NULL, n, n_threads, &compiled, &cached);
    printf("tune --compile-only: %d candidates for sm_%d in %.1f s: %d compiled, %d already "
           "cached%s; cache %s\n",
           n, arch, nj_now() - t0, compiled, cached, failed ? ", SOME FAILED" : "",
           normjit_ctx_cache_dir(ctx));
    normjit_ctx_destroy(ctx);
    free(variants);
    free(cand);
    return failed ? NJ_EXIT_FAIL : NJ_EXIT_OK;
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
        {"explore", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0}};
    int ops[2] = {NORMJIT_OP_RMSNORM, NORMJIT_OP_LAYERNORM}, n_ops = 2;
    int dtypes[3] = {NORMJIT_DTYPE_F16, NORMJIT_DTYPE_BF16}, n_dtypes = 2;
    int64_t hidden[MAX_ITEMS] = {1024, 2048, 2880, 3584, 4096, 5120, 7168, 8192, 12288, 16384};
    int n_hidden = 10, resume = 0, only_compile = 0, arch = 0, c, i, d, h, n_configs, status;
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
            if ((n_ops = nj_parse_name_list(optarg, nj_op_parse, "op", ops, 2, err,
                                            sizeof err)) < 0)
                return nj_usage_error("tune", "--op: %s", err);
            break;
        case 'd':
            if ((n_dtypes = nj_parse_name_list(optarg, nj_dtype_parse, "dtype", dtypes, 3, err,
                                               sizeof err)) < 0)
                return nj_usage_error("tune", "--dtype: %s", err);
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

    n_configs = n_ops * n_dtypes * n_hidden;
    configs = calloc((size_t)n_configs, sizeof *configs);
    results = calloc((size_t)n_configs, sizeof *results);
    if (!configs || !results)
        return NJ_EXIT_FAIL;
    for (i = 0; i < n_ops; i++)
        for (d = 0; d < n_dtypes; d++)
            for (h = 0; h < n_hidden; h++)
                configs[(i * n_dtypes + d) * n_hidden + h] = (config){ops[i], dtypes[d], hidden[h]};
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
            printf("tuned %s %s hidden=%lld\n", nj_op_name(configs[i].op),
                   nj_dtype_name(configs[i].dtype), (long long)configs[i].hidden);
        fflush(stdout);
    }
    if (t.tty && !t.quiet)
        fprintf(stderr, "\r\033[K");

    printf("\n| op | dtype | hidden | tpr | cluster | storage | decode us | prefill us | "
           "large us | vs heuristic (decode/prefill/large) |\n"
           "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |\n");
    for (i = 0; i < n_configs; i++) {
        const outcome *r = &results[i];
        if (r->failed < 0) {
            printf("| %s | %s | %lld | kept from the earlier run |||||||\n",
                   nj_op_name(r->c.op), nj_dtype_name(r->c.dtype), (long long)r->c.hidden);
            continue;
        }
        if (!r->layout.tpr)
            continue;
        printf("| %s | %s | %lld | %d | %d | %s | %.2f | %.2f | %.2f | %.2fx / %.2fx / %.2fx |\n",
               nj_op_name(r->c.op), nj_dtype_name(r->c.dtype), (long long)r->c.hidden,
               r->layout.tpr, r->layout.cluster,
               r->layout.storage == NJ_STORAGE_REG ? "reg" : "stream", r->tuned_us[0],
               r->tuned_us[1], r->tuned_us[2], r->heuristic_us[0] / r->tuned_us[0],
               r->heuristic_us[1] / r->tuned_us[1], r->heuristic_us[2] / r->tuned_us[2]);
    }
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
