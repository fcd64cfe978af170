/* normjit info: what this installation and machine offer. */
#include "cache_scan.h"
#include "compiler.h"
#include "disk_cache.h"
#include "driver.h"
#include "parse.h"
#include "templates.h"
#include "tool.h"

#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: normjit info [--cache-dir DIR]\n"
    "\n"
    "Print the library version, the NVRTC and CUDA driver versions, each GPU,\n"
    "and the kernel cache directory with its entry count. Works without a GPU.\n"
    "\n"
    "  --cache-dir DIR  the cache directory to report (default: NORMJIT_CACHE_DIR,\n"
    "                   else XDG_CACHE_HOME/normjit, else ~/.cache/normjit)\n";

struct tally {
    long entries, temps, problems;
    unsigned long long bytes;
};

static int count_entry(const nj_cache_file *f, void *user)
{
    struct tally *t = user;
    if (f->is_temp) {
        t->temps++;
    } else {
        t->entries++;
        if (S_ISREG(f->st.st_mode))
            t->bytes += (unsigned long long)f->st.st_size;
    }
    return 0;
}

static void count_problem(const char *path, const char *why, void *user)
{
    (void)path, (void)why;
    ((struct tally *)user)->problems++;
}

static void print_nvrtc(void)
{
    const nj_nvrtc *nvrtc;
    int major = 0, minor = 0, n = 0, archs[64], i;
    if (nj_nvrtc_load(&nvrtc) != NORMJIT_OK) {
        printf("nvrtc:    not available: %s\n", normjit_last_error());
        return;
    }
    nvrtc->version(&major, &minor);
    printf("nvrtc:    %d.%d", major, minor);
    if (nvrtc->get_num_supported_archs(&n) == NVRTC_SUCCESS && n > 0 && n <= 64 &&
        nvrtc->get_supported_archs(archs) == NVRTC_SUCCESS) {
        printf(" (compiles for");
        for (i = 0; i < n; i++)
            printf(" sm_%d", archs[i]);
        printf(")");
    }
    printf("\n");
}

static void print_driver(void)
{
    const nj_driver *drv;
    int version = 0, count = 0, i;
    if (nj_driver_load(&drv) != NORMJIT_OK) {
        printf("driver:   not available: %s\n", normjit_last_error());
        return;
    }
    drv->driver_get_version(&version);
    drv->device_get_count(&count);
    printf("driver:   CUDA %d.%d, %d GPU%s\n", version / 1000, version % 1000 / 10, count,
           count == 1 ? "" : "s");
    for (i = 0; i < count; i++) {
        CUdevice dev;
        char name[256] = "?";
        int major = 0, minor = 0, sms = 0;
        size_t mem = 0;
        if (drv->device_get(&dev, i) != CUDA_SUCCESS)
            continue;
        drv->device_get_name(name, (int)sizeof name, dev);
        drv->device_get_attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
        drv->device_get_attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
        drv->device_get_attribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
        drv->device_total_mem(&mem, dev);
        printf("gpu %d:    %s, sm_%d%d, %d SMs, %.1f GiB\n", i, name, major, minor, sms,
               (double)mem / (1u << 30));
    }
}

/* The cache root as the library judges it (nj_disk_root_check), and what 'normjit cache' sees. */
static void print_cache(const char *dir)
{
    char *root = NULL, why[PATH_MAX + 256];
    struct tally t = {0, 0, 0, 0};
    int r;
    if (nj_disk_cache_resolve(dir, &root) != NORMJIT_OK) {
        printf("cache:    none: %s\n", normjit_last_error());
        return;
    }
    printf("cache:    %s", root);
    r = nj_disk_root_check(root, why, sizeof why);
    if (r == NJ_ROOT_MISSING) {
        printf(" (not created yet)\n");
    } else if (r == NJ_ROOT_REFUSED) {
        printf(" (not used: %s)\n", why);
    } else if (nj_cache_walk(root, count_entry, count_problem, &t) != 0) {
        printf(" (cannot be read: %s)\n", strerror(errno));
    } else {
        printf(": %ld entr%s, %.1f MiB", t.entries, t.entries == 1 ? "y" : "ies",
               (double)t.bytes / (1u << 20));
        if (t.temps)
            printf(", %ld temporary file%s", t.temps, t.temps == 1 ? "" : "s");
        if (t.problems)
            printf(", %ld folder%s not inspected (see 'normjit cache verify')", t.problems,
                   t.problems == 1 ? "" : "s");
        printf("%s\n", access(root, W_OK) ? " (read-only)" : "");
    }
    free(root);
}

int nj_cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {{"cache-dir", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const nj_templates *templates;
    const char *cache_dir = NULL;
    char err[128];
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cache_dir = optarg;
            break;
        case 'h':
            fputs(help, stdout);
            return NJ_EXIT_OK;
        default:
            nj_parse_option_problem(c, optopt, argv[optind - 1], err, sizeof err);
            return nj_usage_error("info", "%s", err);
        }
    }
    if (optind < argc)
        return nj_usage_error("info", "unexpected argument '%s'", argv[optind]);

    printf("normjit:  %s\n", normjit_version_string());
    if (nj_templates_get(&templates) == NORMJIT_OK)
        printf("kernels:  %s templates, digest %s\n", templates->origin, templates->digest);
    else
        printf("kernels:  unusable: %s\n", normjit_last_error());
    print_nvrtc();
    print_driver();
    print_cache(cache_dir);
    return NJ_EXIT_OK;
}
