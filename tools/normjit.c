/* normjit: inspect the setup, warm the kernel cache, measure. */
#include "tool.h"

#include "ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"info", nj_cmd_info, "library, NVRTC, driver and GPU versions; the cache directory"},
    {"warm", nj_cmd_warm, "compile kernels into the disk cache (no GPU needed with --arch)"},
    {"tune", nj_cmd_tune, "measure the best kernel knobs on this GPU into its tuning table"},
    {"demo", nj_cmd_demo, "normalize the seed's Small shape and time it (without a GPU: warm)"},
    {"bench", nj_cmd_bench, "time the seed benchmark's shapes against the copy bandwidth"},
    {"cache", nj_cmd_cache, "list, verify, prune or clear the kernel cache"},
};

static void usage(FILE *out)
{
    size_t i;
    fprintf(out, "usage: normjit <command> [options]\n\ncommands:\n");
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-6s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'normjit <command> --help' describes a command. Exit status: 0 success, 1 "
                 "failure, 2 usage error.\n");
}

int nj_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "normjit %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'normjit %s --help')\n", cmd);
    return NJ_EXIT_USAGE;
}

int nj_report_failure(const char *what, int status)
{
    fprintf(stderr, "normjit: %s: %s: %s\n", what, normjit_status_name(status),
            normjit_last_error());
    return NJ_EXIT_FAIL;
}

void nj_tool_log(void *user, int level, const char *message)
{
    (void)user;
    fprintf(stderr, "normjit: %s: %s\n", level <= NORMJIT_LOG_ERROR ? "error" : "warning",
            message);
}

/* The --quant names a tool accepts, in the order their codes count from 1. */
static const char *const quant_names[] = {
    "none",         "fp8-tensor",     "fp8-token",     "fp8-group64",      "fp8-group128",
    "int8-tensor",  "int8-token",     "int8-group64",  "int8-group128",    "fp8e5m2-tensor",
    "fp8e5m2-token", "fp8e5m2-group64", "fp8e5m2-group128"};

int nj_tool_quant_code(const char *name)
{
    size_t i;
    int ty, q, g;
    if (!nj_quant_parse(name, &ty, &q, &g))
        return 0;
    for (i = 0; i < sizeof quant_names / sizeof quant_names[0]; i++) {
        int ty2, q2, g2;
        nj_quant_parse(quant_names[i], &ty2, &q2, &g2);
        if (ty == ty2 && q == q2 && g == g2)
            return (int)i + 1;
    }
    return 0;
}

int nj_tool_cast_code(const char *name)
{
    int c;
    for (c = NORMJIT_CAST_NONE; c <= NORMJIT_CAST_GEMMA; c++)
        if (!strcmp(nj_cast_name(c), name))
            return c + 1;
    return 0;
}

const char *nj_tool_quant_name(int quant_code)
{
    return quant_code >= 1 && quant_code <= (int)(sizeof quant_names / sizeof quant_names[0])
               ? quant_names[quant_code - 1]
               : "?";
}

int nj_tool_spec(nj_spec *s, int op, int dtype, int quant_code, int cast, int64_t hidden,
                 const char **why)
{
    const nj_op_desc *d = nj_op_desc_of(op);
    int ty, q, g;
    memset(s, 0, sizeof *s);
    nj_quant_parse(nj_tool_quant_name(quant_code ? quant_code : 1), &ty, &q, &g);
    s->op = op;
    s->tx = s->tw = dtype;
    s->ty = q ? ty : dtype;
    s->tr = d && (d->tensors & NJ_T_RES) ? dtype : 0;
    s->quant = q;
    s->group = g;
    s->cast = cast;
    s->hidden = hidden;
    *why = NULL;
    if (q && d && !d->quant)
        *why = "this op has no quantized outputs";
    else if (g && hidden % g)
        *why = "the group size does not divide the hidden size";
    return *why == NULL;
}

double nj_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int nj_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int main(int argc, char **argv)
{
    size_t i;
    if (argc < 2) {
        usage(stderr);
        return NJ_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return NJ_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("normjit %s\n", normjit_version_string());
        return NJ_EXIT_OK;
    }
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "normjit: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return NJ_EXIT_USAGE;
}
