/*
 * What creating a context costs: a compile-only context (offline_arch, no GPU
 * needed) created and destroyed. A process's first creation pays what is done
 * once per process, so it is timed in fresh processes (this program runs
 * itself once per sample) as well as repeated in one process. The first parse
 * of the shipped tuning tables (nj_shipped_tables, which a context on a GPU
 * pays on its first creation) is timed alone in fresh processes too.
 *
 *   ninja -C build bench/ctx_create
 *   build/bench/ctx_create [--fresh N] [--repeat N] [--arch 90] [--no-disk-cache]
 *
 * Prints the median, minimum and maximum of each, in ms.
 */
#define _POSIX_C_SOURCE 200809L

#include "normjit.h"
#include "tuning.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double create_once(int arch, unsigned flags)
{
    normjit_ctx_options opt;
    normjit_ctx *ctx;
    double t0, t1;
    memset(&opt, 0, sizeof opt);
    opt.struct_size = sizeof opt;
    opt.offline_arch = arch;
    opt.flags = flags;
    t0 = now_ms();
    if (normjit_ctx_create(&ctx, &opt) != NORMJIT_OK) {
        fprintf(stderr, "normjit_ctx_create: %s\n", normjit_last_error());
        exit(1);
    }
    t1 = now_ms();
    normjit_ctx_destroy(ctx);
    return t1 - t0;
}

static double parse_shipped_once(void)
{
    double t0 = now_ms(), t1;
    int n;
    nj_shipped_tables(&n);
    t1 = now_ms();
    if (n != nj_shipped_tuning_count) {
        fprintf(stderr, "a shipped tuning table did not parse: %s\n", normjit_last_error());
        exit(1);
    }
    return t1 - t0;
}

/* The first of `what` in `count` fresh processes. */
static int run_fresh(const char *self, const char *what, int arch, unsigned flags, double *v,
                     int count)
{
    int i;
    for (i = 0; i < count; i++) {
        char cmd[4200];
        FILE *p;
        snprintf(cmd, sizeof cmd, "'%s' %s --arch %d%s", self, what, arch,
                 flags ? " --no-disk-cache" : "");
        if (!(p = popen(cmd, "r")) || fscanf(p, "%lf", &v[i]) != 1 || pclose(p) != 0) {
            fprintf(stderr, "the child process failed\n");
            return -1;
        }
    }
    return 0;
}

static void report(const char *what, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    printf("%-28s median %.4f ms  min %.4f  max %.4f  (%d samples)\n", what, v[n / 2], v[0],
           v[n - 1], n);
}

int main(int argc, char **argv)
{
    int fresh = 100, repeat = 1000, arch = 90, child = 0, child_tables = 0, i;
    unsigned flags = 0;
    double *v;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fresh") && i + 1 < argc)
            fresh = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--arch") && i + 1 < argc)
            arch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-disk-cache"))
            flags |= NORMJIT_CTX_NO_DISK_CACHE;
        else if (!strcmp(argv[i], "--child"))
            child = 1;
        else if (!strcmp(argv[i], "--child-tables"))
            child_tables = 1;
        else {
            fprintf(stderr, "usage: %s [--fresh N] [--repeat N] [--arch CC] [--no-disk-cache]\n",
                    argv[0]);
            return 2;
        }
    }
    if (child) {
        printf("%.6f\n", create_once(arch, flags));
        return 0;
    }
    if (child_tables) {
        printf("%.6f\n", parse_shipped_once());
        return 0;
    }
    if (fresh < 1 || repeat < 1) {
        fprintf(stderr, "--fresh and --repeat take a count of 1 or more\n");
        return 2;
    }
    v = malloc(sizeof *v * (size_t)(fresh > repeat ? fresh : repeat));
    if (!v)
        return 1;
    if (run_fresh(argv[0], "--child", arch, flags, v, fresh) != 0)
        return 1;
    report("first creation (fresh)", v, fresh);
    if (run_fresh(argv[0], "--child-tables", arch, flags, v, fresh) != 0)
        return 1;
    report("shipped tables parse (fresh)", v, fresh);
    create_once(arch, flags);
    for (i = 0; i < repeat; i++)
        v[i] = create_once(arch, flags);
    report("later creations (in process)", v, repeat);
    free(v);
    return 0;
}
