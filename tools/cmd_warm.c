/* normjit warm: compile kernels into the disk cache, in parallel, with or without a GPU. */
#include "driver_extra.h"
#include "hfconfig.h"
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
#define MAX_ARCHS 16

static const char help[] =
    "usage: normjit warm [options]\n"
    "\n"
    "Compile the kernels for every combination of operation, dtype and hidden\n"
    "size into the disk cache, so that later runs load them instead of\n"
    "compiling. With --arch sm_XX no GPU or driver is needed.\n"
    "\n"
    "  --arch LIST        sm_80,sm_90,... or auto (the first GPU; default); kernels\n"
    "                     are compiled for each (the option may be repeated)\n"
    "  --op LIST          rmsnorm,layernorm,add_rmsnorm,add_layernorm,qk_rmsnorm\n"
    "                     (default: rmsnorm,layernorm)\n"
    "  --dtype LIST       f16,bf16,f32: input, output and weight dtype (default: f16,bf16)\n"
    "  --hidden LIST      hidden sizes (head_dim for qk_rmsnorm; default: 2048,2880,3584,\n"
    "                     4096,5120,7168,8192)\n"
    "  --quant LIST       none,fp8-tensor,fp8-token,int8-token,fp8-group128,... (default:\n"
    "                     none): quantized outputs, for every op that has them\n"
    "  --cast LIST        none,llama,gemma: where the result is rounded (default: none)\n"
    "  --config FILE      a HuggingFace config.json: exactly the kernels that model calls\n"
    "                     (its norms over hidden_size, with the residual add, the low-rank\n"
    "                     norms of q_lora_rank and kv_lora_rank, QK-norm over head_dim),\n"
    "                     with its dtype and cast mode; --quant adds quantized outputs,\n"
    "                     --dtype overrides the dtype; --op, --hidden and --cast do not apply\n"
    "  --all-alignments   also the narrower kernels used for unaligned tensors\n"
    "  --cache-dir DIR    cache directory (default: NORMJIT_CACHE_DIR, else\n"
    "                     XDG_CACHE_HOME/normjit, else ~/.cache/normjit)\n"
    "  -j, --jobs N       parallel compilations (default: all cores)\n"
    "  -q, --quiet        print only the summary line\n"
    "\n"
    "A second identical warm compiles nothing. Exit status: 0 when every kernel\n"
    "is in the cache, 1 when any failed to compile or could not be stored there\n"
    "(each is named, and a warning says why), 2 on a usage error.\n";

typedef struct job {
    int arch; /* index into warm_state.archs */
    int op, dtype, quant_code, cast;
    int64_t hidden;
    unsigned not_cached; /* kernels of this job compiled but not stored */
} job;

typedef struct warm_state {
    normjit_ctx *ctx[MAX_ARCHS];
    int archs[MAX_ARCHS];
    int n_archs;
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

/*
 * "rmsnorm f16 hidden=4096", with the quantized output and cast mode when
 * there are, and " sm_80" when several architectures are warmed.
 */
static void describe(const warm_state *w, const job *j, char *out, size_t size)
{
    int n = snprintf(out, size, "%s %s%s%s%s%s hidden=%lld", nj_op_name(j->op),
                     nj_dtype_name(j->dtype), j->quant_code > 1 ? " " : "",
                     j->quant_code > 1 ? nj_tool_quant_name(j->quant_code) : "",
                     j->cast ? " cast=" : "", j->cast ? nj_cast_name(j->cast) : "",
                     (long long)j->hidden);
    if (w->n_archs > 1 && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, " sm_%d", w->archs[j->arch]);
}

static void progress(warm_state *w, const job *j, const normjit_prepare_stats *st, int status,
                     const char *error)
{
    char name[160];
    const char *what = status != NORMJIT_OK ? "FAILED"
                       : st->compiled       ? "compiled"
                       : st->from_disk      ? "cached"
                                            : "loaded";
    describe(w, j, name, sizeof name);
    if (status != NORMJIT_OK) {
        if (w->tty)
            fprintf(stderr, "\r\033[K");
        fprintf(stderr, "normjit warm: %s: %s: %s\n", name, normjit_status_name(status), error);
    }
    if (w->quiet)
        return;
    if (w->tty) {
        int width = 30, filled = w->done * width / w->n_jobs;
        fprintf(stderr, "\r\033[K[%.*s%*s] %d/%d %s: %s", filled,
                "##############################", width - filled, "", w->done, w->n_jobs, name,
                what);
        if (w->done == w->n_jobs)
            fprintf(stderr, "\r\033[K");
        fflush(stderr);
    } else if (status == NORMJIT_OK) {
        printf("%s: %s%s\n", name, what, st->not_cached ? ", NOT STORED in the disk cache" : "");
        fflush(stdout);
    }
}

static void *worker(void *arg)
{
    warm_state *w = arg;
    for (;;) {
        normjit_prepare_args a;
        normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
        job *j;
        int status;

        pthread_mutex_lock(&w->mu);
        if (w->next == w->n_jobs) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        j = &w->jobs[w->next++];
        pthread_mutex_unlock(&w->mu);

        {
            nj_spec spec;
            const char *why;
            memset(&a, 0, sizeof a);
            a.struct_size = sizeof a;
            a.flags = w->flags;
            nj_tool_spec(&spec, j->op, j->dtype, j->quant_code, j->cast, j->hidden, &why);
            a.op = spec.op;
            a.x_dtype = spec.tx;
            a.y_dtype = spec.ty;
            a.weight_dtype = spec.tw;
            a.residual_dtype = spec.tr;
            a.quant = spec.quant;
            a.group_size = spec.group;
            a.cast = spec.cast;
            a.hidden = &j->hidden;
            a.n_hidden = 1;
        }
        status = normjit_prepare(w->ctx[j->arch], &a, &st);

        pthread_mutex_lock(&w->mu);
        w->done++;
        if (status != NORMJIT_OK)
            w->failed++;
        j->not_cached = st.not_cached;
        w->total.compiled += st.compiled;
        w->total.from_disk += st.from_disk;
        w->total.in_memory += st.in_memory;
        w->total.not_cached += st.not_cached;
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

/* Add `arch` to the list unless it is there: a repeated --arch adds, it does not replace. */
static int add_arch(warm_state *w, int arch)
{
    int i;
    for (i = 0; i < w->n_archs; i++)
        if (w->archs[i] == arch)
            return 0;
    if (w->n_archs == MAX_ARCHS)
        return -1;
    w->archs[w->n_archs++] = arch;
    return 0;
}

/* The kernels that are not in the disk cache after the warm, job by job, and the verdict. */
static int report_not_cached(const warm_state *w)
{
    char name[160];
    int i;
    if (!w->total.not_cached)
        return 0;
    for (i = 0; i < w->n_jobs; i++) {
        const job *j = &w->jobs[i];
        if (!j->not_cached)
            continue;
        describe(w, j, name, sizeof name);
        fprintf(stderr, "normjit warm: %s: %u kernel%s compiled but not stored in the disk cache\n",
                name, j->not_cached, j->not_cached == 1 ? "" : "s");
    }
    fprintf(stderr,
            "normjit warm: %u kernel%s not in the disk cache %s (the warning above says why); "
            "they would be compiled again at run time\n",
            w->total.not_cached, w->total.not_cached == 1 ? " is" : "s are",
            normjit_ctx_cache_dir(w->ctx[0]));
    return 1;
}

int nj_cmd_warm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"arch", required_argument, NULL, 'a'},   {"op", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, 'd'},  {"hidden", required_argument, NULL, 'H'},
        {"cache-dir", required_argument, NULL, 'c'}, {"jobs", required_argument, NULL, 'j'},
        {"all-alignments", no_argument, NULL, 'A'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {"quant", required_argument, NULL, 'Q'},
        {"cast", required_argument, NULL, 'K'},    {"config", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0}};
    int ops[8] = {NORMJIT_OP_RMSNORM, NORMJIT_OP_LAYERNORM}, n_ops = 2;
    int dtypes[3] = {NORMJIT_DTYPE_F16, NORMJIT_DTYPE_BF16}, n_dtypes = 2, dtype_given = 0;
    int quants[16] = {1}, n_quants = 1, casts[3] = {0}, n_casts = 1, q, k;
    const char *config = NULL;
    nj_model model;
    int64_t hidden[MAX_ITEMS] = {2048, 2880, 3584, 4096, 5120, 7168, 8192}, jobs64[1];
    int n_hidden = 7, n_threads = nj_cpu_count(), c, i, d, a, status, rc;
    int given[MAX_ARCHS], n_given = 0;
    const char *cache_dir = NULL;
    char err[256], archs_text[MAX_ARCHS * 8] = "";
    warm_state w;
    normjit_ctx_options o;
    pthread_t *threads;
    double t0;

    memset(&w, 0, sizeof w);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'a': {
            int list[MAX_ARCHS], n = nj_parse_arch_list(optarg, list, MAX_ARCHS, err, sizeof err);
            if (n < 0)
                return nj_usage_error("warm", "--arch: %s", err);
            for (i = 0; i < n; i++) {
                if (list[i] && list[i] < 80)
                    return nj_usage_error("warm", "--arch: sm_%d is older than sm_80", list[i]);
                if (n_given == MAX_ARCHS)
                    return nj_usage_error("warm", "--arch: more than %d architectures",
                                          MAX_ARCHS);
                given[n_given++] = list[i];
            }
            break;
        }
        case 'o':
            if ((n_ops = nj_parse_name_list(optarg, nj_op_parse, "op", ops, 8, err,
                                            sizeof err)) < 0)
                return nj_usage_error("warm", "--op: %s", err);
            break;
        case 'd':
            if ((n_dtypes = nj_parse_name_list(optarg, nj_dtype_parse, "dtype", dtypes, 3, err,
                                               sizeof err)) < 0)
                return nj_usage_error("warm", "--dtype: %s", err);
            for (d = 0; d < n_dtypes; d++)
                if (!nj_dtype_is_float(dtypes[d]))
                    return nj_usage_error("warm", "--dtype: f16, bf16 or f32 (quantized outputs "
                                                  "go with --quant)");
            dtype_given = 1;
            break;
        case 'Q':
            if ((n_quants = nj_parse_name_list(optarg, nj_tool_quant_code, "quant", quants, 16,
                                               err, sizeof err)) < 0)
                return nj_usage_error("warm", "--quant: %s", err);
            break;
        case 'K':
            if ((n_casts = nj_parse_name_list(optarg, nj_tool_cast_code, "cast", casts, 3, err,
                                              sizeof err)) < 0)
                return nj_usage_error("warm", "--cast: %s", err);
            for (k = 0; k < n_casts; k++)
                casts[k]--; /* the code is cast + 1 */
            break;
        case 'C':
            config = optarg;
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
            nj_parse_option_problem(c, optopt, argv[optind - 1], err, sizeof err);
            return nj_usage_error("warm", "%s", err);
        }
    }
    if (optind < argc)
        return nj_usage_error("warm", "unexpected argument '%s'", argv[optind]);
    if (config) {
        if (nj_model_read(config, &model, err, sizeof err) != 0) {
            fprintf(stderr, "normjit warm: --config %s\n", err);
            return NJ_EXIT_FAIL;
        }
        if (!dtype_given) {
            if (!model.dtype) {
                fprintf(stderr, "normjit warm: --config %s names no dtype (dtype or "
                                "torch_dtype); give --dtype\n",
                        config);
                return NJ_EXIT_FAIL;
            }
            dtypes[0] = model.dtype;
            n_dtypes = 1;
        }
    }
    if (n_given == 0)
        given[n_given++] = 0; /* auto */
    for (i = 0; i < n_given; i++) {
        int arch = given[i];
        if (!arch && (status = detect_arch(&arch)) != NORMJIT_OK)
            return nj_report_failure("warm: no --arch given and no GPU to detect it from (give "
                                     "--arch sm_90 to compile without a GPU)",
                                     status);
        add_arch(&w, arch); /* at most MAX_ARCHS distinct: given[] holds no more */
    }

    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.cache_dir = cache_dir;
    o.log_level = NORMJIT_LOG_WARN;
    o.log = nj_tool_log;
    for (a = 0; a < w.n_archs; a++) {
        o.offline_arch = w.archs[a];
        if ((status = normjit_ctx_create(&w.ctx[a], &o)) != NORMJIT_OK) {
            while (a-- > 0)
                normjit_ctx_destroy(w.ctx[a]);
            return nj_report_failure("warm", status);
        }
        snprintf(archs_text + strlen(archs_text), sizeof archs_text - strlen(archs_text),
                 "%ssm_%d", a ? "," : "", w.archs[a]);
    }
    rc = NJ_EXIT_FAIL;
    if (!normjit_ctx_cache_dir(w.ctx[0])) {
        fprintf(stderr, "normjit warm: no cache directory to warm\n");
        goto out;
    }

    /* Every combination (or every norm of the model), less those without a kernel (a
       quantized QK-norm, a group that does not divide the hidden size). */
    {
        const int n_items = config ? model.n_norms : n_ops * n_hidden * n_casts;
        w.jobs = calloc((size_t)(w.n_archs * n_items * n_dtypes * n_quants), sizeof *w.jobs);
    }
    threads = calloc((size_t)n_threads, sizeof *threads);
    if (!w.jobs || !threads) {
        fprintf(stderr, "normjit warm: out of memory\n");
        free(threads);
        goto out;
    }
    for (a = 0; a < w.n_archs; a++)
        for (i = 0; i < (config ? model.n_norms : n_ops * n_hidden * n_casts); i++)
            for (q = 0; q < n_quants; q++)
                for (d = 0; d < n_dtypes; d++) {
                    job j;
                    nj_spec spec;
                    const char *why;
                    memset(&j, 0, sizeof j);
                    j.arch = a;
                    j.dtype = dtypes[d];
                    j.quant_code = quants[q];
                    if (config) {
                        j.op = model.norms[i].op;
                        j.hidden = model.norms[i].hidden;
                        j.cast = model.norms[i].cast;
                    } else {
                        j.op = ops[i / (n_hidden * n_casts)];
                        j.hidden = hidden[i / n_casts % n_hidden];
                        j.cast = casts[i % n_casts];
                    }
                    if (nj_tool_spec(&spec, j.op, j.dtype, j.quant_code, j.cast, j.hidden, &why))
                        w.jobs[w.n_jobs++] = j;
                }
    if (config && !w.quiet) {
        printf("%s: %s, %s, %d norm%s:", config, model.model_type[0] ? model.model_type : "model",
               nj_dtype_name(dtypes[0]), model.n_norms, model.n_norms == 1 ? "" : "s");
        for (i = 0; i < model.n_norms; i++)
            printf("%s %s %lld (cast %s)", i ? "," : "", nj_op_name(model.norms[i].op),
                   (long long)model.norms[i].hidden, nj_cast_name(model.norms[i].cast));
        printf("\n");
    }
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

    printf("warm: %u kernel%s for %s in %.2f s: %u compiled, %u already cached%s%s; cache %s\n",
           w.total.compiled + w.total.from_disk + w.total.in_memory,
           w.total.compiled + w.total.from_disk + w.total.in_memory == 1 ? "" : "s", archs_text,
           nj_now() - t0, w.total.compiled, w.total.from_disk + w.total.in_memory,
           w.total.not_cached ? ", SOME NOT STORED" : "", w.failed ? ", SOME FAILED" : "",
           normjit_ctx_cache_dir(w.ctx[0]));
    fflush(stdout);
    rc = report_not_cached(&w) || w.failed ? NJ_EXIT_FAIL : NJ_EXIT_OK;
    pthread_mutex_destroy(&w.mu);
    free(threads);
out:
    for (a = 0; a < w.n_archs; a++)
        normjit_ctx_destroy(w.ctx[a]);
    free(w.jobs);
    return rc;
}
