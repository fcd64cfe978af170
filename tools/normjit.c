/* normjit: inspect the setup, warm the kernel cache, measure. */
#include "tool.h"

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
