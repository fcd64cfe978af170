/*
 * Where a first call's NVRTC compile goes: renders the exact source the
 * library compiles for a request (the planner's variant, src/render.c) and
 * compiles it with the library's options (src/compiler.c) plus any given,
 * timing nvrtcCompileProgram. No GPU is needed.
 *
 *   ninja -C build bench/nvrtc_time
 *   build/bench/nvrtc_time --op layernorm --dtype f16 --hidden 4352 --rows 8 \
 *      --repeat 5 --opt --time=- [--opt OPTION ...] [--cubin FILE] [--source FILE]
 *
 * The request is --op, --dtype (x, y and weight), --hidden, --quant
 * (fp8-group128, ...), --cast, --rows (its bucket) and --arch (90); its
 * variant is the heuristic's (no tuning table), as a compile-only context
 * plans it. --opt --time=- prints NVRTC's own table of its phases (front
 * end, NVVM, ptxas) after each compile. --bare drops the library's options
 * but the architecture; --source-in FILE compiles that file instead of the
 * rendered source, and $NORMJIT_KERNEL_DIR renders from other templates (to
 * try edits without rebuilding); --ptx FILE compiles to PTX (compute_XX)
 * instead and writes it. Prints the kernel's name, the source size, each
 * compile's wall and CPU time and their minimum and median: the first
 * compile of a process is the one a first call pays.
 */
#include "args.h"
#include "compiler.h"
#include "files.h"
#include "ops.h"
#include "planner.h"
#include "render.h"
#include "templates.h"
#include "variant.h"

#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>

#define MAX_EXTRA 16
#define MAX_SOURCE_BYTES (16u << 20)
#define MAX_REPEAT 64

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* CPU time of the process: less disturbed than wall time on a shared machine. */
static double cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f))
        ok = 0;
    return ok;
}

static void usage(void)
{
    fprintf(stderr, "usage: nvrtc_time --op OP --dtype DT --hidden H [--quant Q] [--cast C] [--rows N] "
                    "[--arch 90] [--repeat N] [--opt OPTION]... [--bare] [--cubin FILE] "
                    "[--ptx FILE] [--source FILE] [--source-in FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *op_name = "rmsnorm", *dtype = "f16", *quant = "none", *cubin_path = NULL;
    int cast = 0;
    const char *source_path = NULL, *source_in = NULL, *ptx_path = NULL, *extra[MAX_EXTRA];
    char ptx_arch[40];
    const nj_templates *templates;
    const nj_nvrtc *nvrtc;
    nj_target target;
    nj_planner planner = {0};
    nj_request r;
    nj_plan plan;
    nj_buf source = {0}, describe = {0};
    char name[NJ_KERNEL_NAME_MAX];
    const char *options[NJ_MAX_OPTIONS + MAX_EXTRA];
    double ms[MAX_REPEAT], cpu[MAX_REPEAT];
    long long hidden = 4352, rows = 8;
    int arch = 90, repeat = 3, n_extra = 0, bare = 0, n_options = 0, i, ty, q, group;
    char *text;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--bare")) {
            bare = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (!strcmp(a, "--op"))
            op_name = argv[++i];
        else if (!strcmp(a, "--dtype"))
            dtype = argv[++i];
        else if (!strcmp(a, "--hidden"))
            hidden = atoll(argv[++i]);
        else if (!strcmp(a, "--quant"))
            quant = argv[++i];
        else if (!strcmp(a, "--cast"))
            cast = !strcmp(argv[++i], "llama") ? NORMJIT_CAST_LLAMA
                   : !strcmp(argv[i], "gemma") ? NORMJIT_CAST_GEMMA
                                               : 0;
        else if (!strcmp(a, "--rows"))
            rows = atoll(argv[++i]);
        else if (!strcmp(a, "--arch"))
            arch = atoi(argv[++i]);
        else if (!strcmp(a, "--repeat"))
            repeat = atoi(argv[++i]);
        else if (!strcmp(a, "--opt") && n_extra < MAX_EXTRA)
            extra[n_extra++] = argv[++i];
        else if (!strcmp(a, "--cubin"))
            cubin_path = argv[++i];
        else if (!strcmp(a, "--ptx"))
            ptx_path = argv[++i];
        else if (!strcmp(a, "--source"))
            source_path = argv[++i];
        else if (!strcmp(a, "--source-in"))
            source_in = argv[++i];
        else
            usage();
    }
    if (repeat < 1 || repeat > MAX_REPEAT)
        usage();

    memset(&r, 0, sizeof r);
    r.s.op = nj_op_parse(op_name);
    r.s.tx = r.s.ty = r.s.tw = nj_dtype_parse(dtype);
    r.s.hidden = hidden;
    if (!r.s.op || !r.s.tx || !nj_quant_parse(quant, &ty, &q, &group)) {
        fprintf(stderr, "unknown op, dtype or quant\n");
        return 2;
    }
    if (nj_op_desc_of(r.s.op)->tensors & NJ_T_RES)
        r.s.tr = r.s.tx;
    if (q) {
        r.s.ty = ty;
        r.s.quant = q;
        r.s.group = group;
    }
    r.s.cast = cast;
    r.vec = nj_widest_vec(&r.s);
    r.bucket = nj_bucket_of_rows(rows);
    planner.arch = arch;
    nj_planner_plan(&planner, &r, &plan);

    if (nj_templates_get(&templates) || nj_nvrtc_load(&nvrtc) ||
        nj_target_init(&target, nvrtc, arch) ||
        nj_render(templates, &plan.v, &source, name) || nj_buf_status(&source)) {
        fprintf(stderr, "%s\n", normjit_last_error());
        return 1;
    }
    nj_variant_describe(&plan.v, &describe);
    if (source_in) {
        nj_file_error e;
        nj_buf_reset(&source);
        if (nj_file_read(AT_FDCWD, source_in, 0, MAX_SOURCE_BYTES, &source, &e) != 0) {
            nj_file_fail(NORMJIT_EIO, "cannot read", source_in, &e);
            fprintf(stderr, "%s\n", normjit_last_error());
            return 1;
        }
    }
    text = source.data;
    if (source_path && !write_all(source_path, text, strlen(text))) {
        fprintf(stderr, "cannot write %s\n", source_path);
        return 1;
    }
    for (i = 0; i < (bare ? 1 : target.n_options); i++)
        options[n_options++] = target.options[i];
    if (ptx_path) {
        /* PTX for the same architecture, to read or to time ptxas on its own */
        snprintf(ptx_arch, sizeof ptx_arch, "--gpu-architecture=compute_%d", target.arch);
        options[0] = ptx_arch;
        target.cubin = 0;
    }
    for (i = 0; i < n_extra; i++)
        options[n_options++] = extra[i];

    printf("kernel %s\n  %s\n  source %zu bytes; options:", name, describe.data, strlen(text));
    for (i = 0; i < n_options; i++)
        printf(" %s", options[i]);
    printf("\n");
    for (i = 0; i < repeat; i++) {
        nvrtcProgram prog;
        size_t size = 0, log_size = 0;
        nvrtcResult res;
        double t0, c0;
        if (nvrtc->create_program(&prog, text, name, 0, NULL, NULL) != NVRTC_SUCCESS)
            return 1;
        t0 = now_ms();
        c0 = cpu_ms();
        res = nvrtc->compile_program(prog, n_options, options);
        ms[i] = now_ms() - t0;
        cpu[i] = cpu_ms() - c0;
        if (nvrtc->get_program_log_size(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
            char *log = malloc(log_size);
            if (log && nvrtc->get_program_log(prog, log) == NVRTC_SUCCESS)
                printf("%s", log);
            free(log);
        }
        if (res != NVRTC_SUCCESS) {
            fprintf(stderr, "compile failed: %s\n", nvrtc->get_error_string(res));
            return 1;
        }
        if (target.cubin && nvrtc->get_cubin_size(prog, &size) == NVRTC_SUCCESS && cubin_path &&
            i == 0) {
            char *image = malloc(size);
            if (!image || nvrtc->get_cubin(prog, image) != NVRTC_SUCCESS ||
                !write_all(cubin_path, image, size)) {
                fprintf(stderr, "cannot write %s\n", cubin_path);
                return 1;
            }
            free(image);
        }
        if (ptx_path && i == 0 && nvrtc->get_ptx_size(prog, &size) == NVRTC_SUCCESS) {
            char *ptx = malloc(size);
            if (!ptx || nvrtc->get_ptx(prog, ptx) != NVRTC_SUCCESS ||
                !write_all(ptx_path, ptx, size - 1)) {
                fprintf(stderr, "cannot write %s\n", ptx_path);
                return 1;
            }
            free(ptx);
        }
        printf("  compile %d: %.1f ms, cpu %.1f ms (%s %zu bytes)\n", i + 1, ms[i], cpu[i],
               ptx_path ? "ptx" : "cubin", size);
        nvrtc->destroy_program(&prog);
    }
    qsort(ms, (size_t)repeat, sizeof ms[0], cmp_double);
    qsort(cpu, (size_t)repeat, sizeof cpu[0], cmp_double);
    printf("  min %.1f ms, median %.1f ms over %d (cpu: min %.1f, median %.1f)\n", ms[0],
           ms[repeat / 2], repeat, cpu[0], cpu[repeat / 2]);
    nj_buf_free(&source);
    nj_buf_free(&describe);
    return 0;
}
