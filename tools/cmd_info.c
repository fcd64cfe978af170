/* normjit info: what this installation and machine offer. */
#include "cache_scan.h"
#include "compiler.h"
#include "disk_cache.h"
#include "driver_extra.h"
#include "templates.h"
#include "tool.h"

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
    long entries, temps;
    unsigned long long bytes;
};

static int count_entry(const nj_cache_file *f, void *user)
{
    struct tally *t = user;
    if (f->is_temp) {
        t->temps++;
    } else {
        t->entries++;
        t->bytes += (unsigned long long)f->st.st_size;
    }
    return 0;
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
    const nj_driver_extra *x;
    int version = 0, count = 0, i;
    if (nj_driver_extra_load(&drv, &x) != NORMJIT_OK) {
        printf("driver:   not available: %s\n", normjit_last_error());
        return;
    }
    drv->driver_get_version(&version);
    x->device_get_count(&count);
    printf("driver:   CUDA %d.%d, %d GPU%s\n", version / 1000, version % 1000 / 10, count,
           count == 1 ? "" : "s");
    for (i = 0; i < count; i++) {
        CUdevice dev;
        nj_device_info info;
        if (x->device_get(&dev, i) != CUDA_SUCCESS || nj_device_query(drv, dev, &info) != NORMJIT_OK)
            continue;
        printf("gpu %d:    %s, sm_%d, %d SMs, %.1f GiB\n", i, info.name, info.arch, info.sms,
               (double)info.memory_mib / 1024);
    }
}

static void print_cache(const char *dir)
{
    char *root = NULL;
    struct stat st;
    struct tally t = {0, 0, 0};
    if (nj_disk_cache_resolve(dir, &root) != NORMJIT_OK) {
        printf("cache:    none: %s\n", normjit_last_error());
        return;
    }
    printf("cache:    %s", root);
    if (stat(root, &st) != 0) {
        printf(" (not created yet)\n");
    } else if (!nj_disk_trusted(&st)) {
        printf(" (refused: %s)\n", st.st_uid != geteuid() ? "owned by another user"
                                                          : "writable by group or others");
    } else {
        nj_cache_scan(root, count_entry, &t);
        printf(": %ld entr%s, %.1f MiB", t.entries, t.entries == 1 ? "y" : "ies",
               (double)t.bytes / (1u << 20));
        if (t.temps)
            printf(", %ld temporary file%s", t.temps, t.temps == 1 ? "" : "s");
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
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cache_dir = optarg;
            break;
        case 'h':
            fputs(help, stdout);
            return NJ_EXIT_OK;
        default:
            return nj_usage_error("info", "unknown option");
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
