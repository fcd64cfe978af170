/*
 * Many threads asking one context for kernels at once: 16 threads, each
 * asking for every (op, hidden size) pair in its own order, several rounds,
 * through launches (at several row counts and pointer alignments, so several
 * kernels and many request keys, enough to grow the kernel table while
 * others read it) and through normjit_prepare. NVRTC is a fake that sleeps
 * in every compile to widen the races and counts compiles per kernel name.
 *
 * Every call must succeed, each distinct kernel must be compiled exactly
 * once and loaded exactly once, and the driver must see exactly the
 * launches that were made. Run it under ThreadSanitizer too (a build with
 * -Db_sanitize=thread): all shared state of the fakes is atomic or locked,
 * so any report is about the library.
 */
#include "ctx.h"
#include "fault_fakes.h"
#include "render.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define N_THREADS 16
#define N_ROUNDS 4
#define N_OPS 2
#define N_HIDDEN 4
#define N_COMBOS (N_OPS * N_HIDDEN)
#define N_ALIGN 4
#define COMPILE_SLEEP_US 3000

static const int ops[N_OPS] = {NORMJIT_OP_RMSNORM, NORMJIT_OP_LAYERNORM};
static const int64_t hiddens[N_HIDDEN] = {768, 1024, 2048, 5120};
/* Byte offsets of x from a 256-byte boundary: widest f16 vectors 8, 4, 2, 1. */
static const uintptr_t x_offsets[N_ALIGN] = {0, 8, 4, 2};
static const int vecs[N_ALIGN] = {8, 4, 2, 1};
static const int64_t row_counts[NJ_BUCKETS] = {1, 1000, 20000};

/* Which requests (op, hidden, vec, bucket) some thread made. */
static atomic_int asked[N_OPS][N_HIDDEN][N_ALIGN][NJ_BUCKETS];

typedef struct worker {
    int index;
    normjit_ctx *ctx;
    pthread_barrier_t *start;
    int launches;
    int prepares;
    int failures;
    char first_failure[512];
} worker;

static void fail_once(worker *w, const char *what, int status)
{
    if (w->failures++ == 0)
        snprintf(w->first_failure, sizeof w->first_failure, "thread %d: %s: %s: %s", w->index,
                 what, normjit_status_name(status), normjit_last_error());
}

static void launch(worker *w, int o, int h, int a, int b)
{
    normjit_norm_args args;
    int status;
    memset(&args, 0, sizeof args);
    args.struct_size = sizeof args;
    args.rows = row_counts[b];
    args.hidden = hiddens[h];
    args.x = (const void *)(uintptr_t)(0x100000000ull + x_offsets[a]);
    args.y = (void *)(uintptr_t)0x200000000ull;
    args.weight = (const void *)(uintptr_t)0x300000000ull;
    args.x_dtype = args.y_dtype = args.weight_dtype = NORMJIT_DTYPE_F16;
    args.eps = 1e-6f;
    if (ops[o] == NORMJIT_OP_LAYERNORM) {
        args.bias = (const void *)(uintptr_t)0x380000000ull;
        status = normjit_layernorm_fwd(w->ctx, &args, NULL);
    } else {
        status = normjit_rmsnorm_fwd(w->ctx, &args, NULL);
    }
    atomic_store(&asked[o][h][a][b], 1);
    if (status == NORMJIT_OK)
        w->launches++;
    else
        fail_once(w, "launch", status);
}

static void prepare(worker *w, int o, int h, int all_alignments)
{
    normjit_prepare_args p;
    normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
    int status, a, b;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.flags = all_alignments ? NORMJIT_PREPARE_ALL_ALIGNMENTS : 0;
    p.op = ops[o];
    p.x_dtype = p.y_dtype = p.weight_dtype = NORMJIT_DTYPE_F16;
    p.hidden = &hiddens[h];
    p.n_hidden = 1;
    status = normjit_prepare(w->ctx, &p, &st);
    for (a = 0; a < (all_alignments ? N_ALIGN : 1); a++)
        for (b = 0; b < NJ_BUCKETS; b++)
            atomic_store(&asked[o][h][a][b], 1);
    if (status == NORMJIT_OK)
        w->prepares++;
    else
        fail_once(w, "prepare", status);
}

static void *work(void *arg)
{
    worker *w = arg;
    int order[N_COMBOS], round, i;
    uint32_t seed = 0x9e3779b9u * (uint32_t)(w->index + 1);

    for (i = 0; i < N_COMBOS; i++)
        order[i] = i;
    pthread_barrier_wait(w->start);
    for (round = 0; round < N_ROUNDS; round++) {
        /* A thread-specific order of all the pairs, new each round. */
        for (i = N_COMBOS - 1; i > 0; i--) {
            int j, t;
            seed = seed * 1664525u + 1013904223u;
            j = (int)((seed >> 8) % (uint32_t)(i + 1));
            t = order[i], order[i] = order[j], order[j] = t;
        }
        for (i = 0; i < N_COMBOS; i++) {
            int o = order[i] / N_HIDDEN, h = order[i] % N_HIDDEN;
            int pick = (w->index + round + i) % 6;
            if (pick == 0)
                prepare(w, o, h, (w->index + i) % 2);
            else
                launch(w, o, h, (w->index * 3 + i + round) % N_ALIGN,
                       (w->index + i + 2 * round) % NJ_BUCKETS);
        }
    }
    return NULL;
}

static void test_many_threads_one_context(void **state)
{
    nj_driver drv;
    nj_nvrtc nvrtc;
    normjit_ctx_options opt;
    normjit_ctx *ctx = NULL;
    pthread_t threads[N_THREADS];
    pthread_barrier_t start;
    worker workers[N_THREADS];
    char names[N_OPS * N_HIDDEN * N_ALIGN * NJ_BUCKETS][NJ_KERNEL_NAME_MAX];
    int n_names = 0, n_requests = 0, launches = 0, prepares = 0, i, o, h, a, b, status;
    ff_log log;
    (void)state;

    ff_driver_init(&drv);
    ff_nvrtc_init(&nvrtc, COMPILE_SLEEP_US);
    ff_log_init(&log);
    memset(asked, 0, sizeof asked);
    memset(&opt, 0, sizeof opt);
    opt.struct_size = sizeof opt;
    opt.flags = NORMJIT_CTX_NO_DISK_CACHE;
    opt.log_level = NORMJIT_LOG_INFO;
    opt.log = ff_log_fn;
    opt.log_user = &log;
    status = nj_ctx_create_with(&ctx, &opt, &drv, &nvrtc);
    if (status != NORMJIT_OK)
        fail_msg("nj_ctx_create_with: %s", normjit_last_error());
    assert_null(normjit_ctx_cache_dir(ctx));

    assert_int_equal(pthread_barrier_init(&start, NULL, N_THREADS), 0);
    for (i = 0; i < N_THREADS; i++) {
        memset(&workers[i], 0, sizeof workers[i]);
        workers[i].index = i;
        workers[i].ctx = ctx;
        workers[i].start = &start;
        assert_int_equal(pthread_create(&threads[i], NULL, work, &workers[i]), 0);
    }
    for (i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&start);

    for (i = 0; i < N_THREADS; i++) {
        if (workers[i].failures)
            fail_msg("%d call(s) failed; first: %s", workers[i].failures,
                     workers[i].first_failure);
        launches += workers[i].launches;
        prepares += workers[i].prepares;
    }

    /* The distinct kernels of every request made, as the context plans them. */
    for (o = 0; o < N_OPS; o++)
        for (h = 0; h < N_HIDDEN; h++)
            for (a = 0; a < N_ALIGN; a++)
                for (b = 0; b < NJ_BUCKETS; b++) {
                    nj_request r;
                    nj_plan plan;
                    char name[NJ_KERNEL_NAME_MAX];
                    int k, dup = 0;
                    if (!atomic_load(&asked[o][h][a][b]))
                        continue;
                    n_requests++;
                    memset(&r, 0, sizeof r);
                    r.s.op = ops[o];
                    r.s.tx = r.s.ty = r.s.tw = NORMJIT_DTYPE_F16;
                    r.vec = vecs[a];
                    r.bucket = b;
                    r.s.hidden = hiddens[h];
                    nj_planner_plan(&ctx->planner, &r, &plan);
                    nj_variant_name(&plan.v, name, sizeof name);
                    for (k = 0; k < n_names; k++)
                        dup |= !strcmp(names[k], name);
                    if (!dup)
                        snprintf(names[n_names++], sizeof names[0], "%s", name);
                }
    print_message("%d threads: %d launches, %d prepares, %d request keys, %d distinct kernels, "
                  "up to %d compiles at once\n",
                  N_THREADS, launches, prepares, n_requests, n_names,
                  atomic_load(&ff_nv.max_concurrent));

    assert_int_equal(ff_nv.overflow, 0);
    for (i = 0; i < n_names; i++) {
        const ff_kernel_count *k = ff_nvrtc_kernel(names[i]);
        if (!k)
            fail_msg("kernel %s was never compiled", names[i]);
        if (k->compiles != 1 || k->loads != 1)
            fail_msg("kernel %s compiled %d times, loaded %d times (expected once each)",
                     names[i], k->compiles, k->loads);
    }
    /* Nothing compiled or loaded that no request needed. */
    assert_int_equal(ff_nv.n_kernels, n_names);
    assert_int_equal(atomic_load(&ff_nv.compiles), n_names);
    assert_int_equal(atomic_load(&ff_drv.module_loads), n_names);
    assert_int_equal(atomic_load(&ff_nv.programs_created), n_names);
    assert_int_equal(atomic_load(&ff_nv.programs_destroyed), n_names);
    assert_int_equal(atomic_load(&ff_drv.launches), launches);
    /* Different kernels were built in parallel, not one at a time. */
    assert_true(atomic_load(&ff_nv.max_concurrent) >= 2);
    /* Enough request keys that the kernel table (64 slots, grown at half full) grew. */
    assert_true(n_requests > 32);

    normjit_ctx_destroy(ctx);
    assert_int_equal(atomic_load(&ff_drv.module_unloads), n_names);
    assert_int_equal(ff_log_count(&log, NORMJIT_LOG_WARN), 0);
    assert_int_equal(ff_log_count(&log, NORMJIT_LOG_ERROR), 0);
    ff_log_destroy(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_threads_one_context),
    };
    unsetenv("NORMJIT_LOG");
    setenv("NORMJIT_TUNING_DIR", "/nonexistent/normjit-test-threads", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
