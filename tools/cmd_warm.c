/* normjit warm: compile kernels into the disk cache, in parallel, with or without a GPU. */
#include "driver_extra.h"
#include "parse.h"
#include "tool.h"
#include "variant.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ITEMS 64

static const char help[] =
    "usage: normjit warm [options]\n"
    "\n"
    "Compile the kernels for every combination of operation, dtype and hidden\n"
    "size into the disk cache, so that later runs load them instead of\n"
    "compiling. With --arch sm_XX no GPU or driver is needed.\n"
    "\n"
    "  --arch ARCH        sm_80, sm_90, ... or auto (the first GPU; default)\n"
    "  --op LIST          rmsnorm,layernorm (default: both)\n"
    "  --dtype LIST       f16,bf16,f32: input, output and weight dtype (default: f16,bf16)\n"
    "  --hidden LIST      hidden sizes (default: 2048,2880,3584,4096,5120,7168,8192)\n"
    "  --all-alignments   also the narrower kernels used for unaligned tensors\n"
    "  --cache-dir DIR    cache directory (default: NORMJIT_CACHE_DIR, else\n"
    "                     XDG_CACHE_HOME/normjit, else ~/.cache/normjit)\n"
    "  -j, --jobs N       parallel compilations (default: all cores)\n"
    "  -q, --quiet        print only the summary line\n"
    "\n"
    "A second identical warm compiles nothing. Exit status: 0 when every kernel\n"
    "is in the cache, 1 when any failed, 2 on a usage error.\n";

typedef struct job {
    int op, dtype;
    int64_t hidden;
} job;

typedef struct warm_state {
    normjit_ctx *ctx;
    job *jobs;
    int n_jobs;
    int next;
    int done;
    int failed;
    int quiet;
    int tty;
    uint32_t flags;
    normjit_prepare_stats total;
    pthread_mutex_t mu;
} warm_state;

static void progress(warm_state *w, const job *j, const normjit_prepare_stats *st, int status,
                     const char *error)
{
    const char *what = status != NORMJIT_OK ? "FAILED"
                       : st->compiled       ? "compiled"
                       : st->from_disk      ? "cached"
                                            : "loaded";
    if (status != NORMJIT_OK) {
        if (w->tty)
            fprintf(stderr, "\r\033[K");
        fprintf(stderr, "normjit warm: %s %s hidden=%lld: %s: %s\n", nj_op_name(j->op),
                nj_dtype_name(j->dtype), (long long)j->hidden, normjit_status_name(status),
                error);
    }
    if (w->quiet)
        return;
    if (w->tty) {
        int width = 30, filled = w->done * width / w->n_jobs;
        fprintf(stderr, "\r\033[K[%.*s%*s] %d/%d %s %s hidden=%lld: %s", filled,
                "##############################", width - filled, "", w->done, w->n_jobs,
                nj_op_name(j->op), nj_dtype_name(j->dtype), (long long)j->hidden, what);
        if (w->done == w->n_jobs)
            fprintf(stderr, "\r\033[K");
        fflush(stderr);
    } else if (status == NORMJIT_OK) {
        printf("%s %s hidden=%lld: %s\n", nj_op_name(j->op), nj_dtype_name(j->dtype),
               (long long)j->hidden, what);
        fflush(stdout);
    }
}

static void *worker(void *arg)
{
    warm_state *w = arg;
    for (;;) {
        normjit_prepare_args a;
        normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
        const job *j;
        int status;

        pthread_mutex_lock(&w->mu);
        if (w->next == w->n_jobs) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        j = &w->jobs[w->next++];
        pthread_mutex_unlock(&w->mu);

        memset(&a, 0, sizeof a);
        a.struct_size = sizeof a;
        a.flags = w->flags;
        a.op = j->op;
        a.x_dtype = a.y_dtype = a.weight_dtype = j->dtype;
        a.hidden = &j->hidden;
        a.n_hidden = 1;
        status = normjit_prepare(w->ctx, &a, &st);

        pthread_mutex_lock(&w->mu);
        w->done++;
        if (status != NORMJIT_OK)
            w->failed++;
        w->total.compiled += st.compiled;
        w->total.from_disk += st.from_disk;
        w->total.in_memory += st.in_memory;
        progress(w, j, &st, status, normjit_last_error());
        pthread_mutex_unlock(&w->mu);
    }
}

/* The compute capability of GPU 0, through the driver. */
static int detect_arch(int *arch)
{
    const nj_driver *drv;
    const nj_driver_extra *x;
    nj_device_info info;
    CUdevice dev;
    int status;
    CUresult res;
    if ((status = nj_driver_extra_load(&drv, &x)) != NORMJIT_OK)
        return status;
    if ((res = x->device_get(&dev, 0)) != CUDA_SUCCESS)
        return nj_cu_fail(drv, res, "finding GPU 0");
    if ((status = nj_device_query(drv, dev, &info)) != NORMJIT_OK)
        return status;
    *arch = info.arch;
    return NORMJIT_OK;
}

int nj_cmd_warm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"arch", required_argument, NULL, 'a'},   {"op", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, 'd'},  {"hidden", required_argument, NULL, 'H'},
        {"cache-dir", required_argument, NULL, 'c'}, {"jobs", required_argument, NULL, 'j'},
        {"all-alignments", no_argument, NULL, 'A'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    int ops[2] = {NORMJIT_OP_RMSNORM, NORMJIT_OP_LAYERNORM}, n_ops = 2;
    int dtypes[3] = {NORMJIT_DTYPE_F16, NORMJIT_DTYPE_BF16}, n_dtypes = 2;
    int64_t hidden[MAX_ITEMS] = {2048, 2880, 3584, 4096, 5120, 7168, 8192}, jobs64[1];
    int n_hidden = 7, arch = 0, n_threads = nj_cpu_count(), c, i, d, h, status;
    const char *cache_dir = NULL;
    char err[256];
    warm_state w;
    normjit_ctx_options o;
    pthread_t *threads;
    double t0;

    memset(&w, 0, sizeof w);
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            if (nj_parse_arch(optarg, &arch, err, sizeof err))
                return nj_usage_error("warm", "--arch: %s", err);
            if (arch && arch < 80)
                return nj_usage_error("warm", "--arch: sm_%d is older than sm_80", arch);
            break;
        case 'o':
            if ((n_ops = nj_parse_name_list(optarg, nj_op_parse, "op", ops, 2, err,
                                            sizeof err)) < 0)
                return nj_usage_error("warm", "--op: %s", err);
            break;
        case 'd':
            if ((n_dtypes = nj_parse_name_list(optarg, nj_dtype_parse, "dtype", dtypes, 3, err,
                                               sizeof err)) < 0)
                return nj_usage_error("warm", "--dtype: %s", err);
            break;
        case 'H':
            if ((n_hidden = nj_parse_int_list(optarg, 1, NJ_MAX_HIDDEN, hidden, MAX_ITEMS, err,
                                              sizeof err)) < 0)
                return nj_usage_error("warm", "--hidden: %s", err);
            break;
        case 'c':
            cache_dir = optarg;
            break;
        case 'j':
            if (nj_parse_int_list(optarg, 1, 1024, jobs64, 1, err, sizeof err) < 0)
                return nj_usage_error("warm", "--jobs: %s", err);
            n_threads = (int)jobs64[0];
            break;
        case 'A':
            w.flags |= NORMJIT_PREPARE_ALL_ALIGNMENTS;
            break;
        case 'q':
            w.quiet = 1;
            break;
        case 'h':
            fputs(help, stdout);
            return NJ_EXIT_OK;
        default:
            return nj_usage_error("warm", "unknown option");
        }
    }
    if (optind < argc)
        return nj_usage_error("warm", "unexpected argument '%s'", argv[optind]);
    if (!arch && (status = detect_arch(&arch)) != NORMJIT_OK)
        return nj_report_failure("warm: no --arch given and no GPU to detect it from (give "
                                 "--arch sm_90 to compile without a GPU)",
                                 status);

    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.cache_dir = cache_dir;
    o.offline_arch = arch;
    o.log_level = NORMJIT_LOG_WARN;
    o.log = nj_tool_log;
    if ((status = normjit_ctx_create(&w.ctx, &o)) != NORMJIT_OK)
        return nj_report_failure("warm", status);
    if (!normjit_ctx_cache_dir(w.ctx)) {
        normjit_ctx_destroy(w.ctx);
        fprintf(stderr, "normjit warm: no cache directory to warm\n");
        return NJ_EXIT_FAIL;
    }

    w.n_jobs = n_ops * n_dtypes * n_hidden;
    w.jobs = calloc((size_t)w.n_jobs, sizeof *w.jobs);
    threads = calloc((size_t)n_threads, sizeof *threads);
    if (!w.jobs || !threads) {
        fprintf(stderr, "normjit warm: out of memory\n");
        return NJ_EXIT_FAIL;
    }
    for (i = 0; i < n_ops; i++)
        for (d = 0; d < n_dtypes; d++)
            for (h = 0; h < n_hidden; h++)
                w.jobs[(i * n_dtypes + d) * n_hidden + h] = (job){ops[i], dtypes[d], hidden[h]};
    w.tty = isatty(STDERR_FILENO);
    pthread_mutex_init(&w.mu, NULL);
    if (n_threads > w.n_jobs)
        n_threads = w.n_jobs;

    t0 = nj_now();
    for (i = 0; i < n_threads; i++)
        if (pthread_create(&threads[i], NULL, worker, &w) != 0)
            break;
    if (i == 0)
        worker(&w);
    while (i-- > 0)
        pthread_join(threads[i], NULL);

    printf("warm: %u kernel%s for sm_%d in %.2f s: %u compiled, %u already cached%s; cache %s\n",
           w.total.compiled + w.total.from_disk + w.total.in_memory,
           w.total.compiled + w.total.from_disk + w.total.in_memory == 1 ? "" : "s", arch,
           nj_now() - t0, w.total.compiled, w.total.from_disk + w.total.in_memory,
           w.failed ? ", SOME FAILED" : "", normjit_ctx_cache_dir(w.ctx));
    pthread_mutex_destroy(&w.mu);
    normjit_ctx_destroy(w.ctx);
    free(w.jobs);
    free(threads);
    return w.failed ? NJ_EXIT_FAIL : NJ_EXIT_OK;
}
