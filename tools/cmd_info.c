/* normjit info: what this installation and machine offer, as text or JSON. */
#include "cache_scan.h"
#include "compiler.h"
#include "disk_cache.h"
#include "driver_extra.h"
#include "json.h"
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
    "usage: normjit info [--cache-dir DIR] [--json]\n"
    "\n"
    "Print the library version, the NVRTC and CUDA driver versions, each GPU,\n"
    "and the kernel cache directory with its entry count. Works without a GPU.\n"
    "\n"
    "  --cache-dir DIR  the cache directory to report (default: NORMJIT_CACHE_DIR,\n"
    "                   else XDG_CACHE_HOME/normjit, else ~/.cache/normjit)\n"
    "  --json           the same as one JSON object: version, kernels, nvrtc,\n"
    "                   driver, gpus, cache; a part that is not available\n"
    "                   carries \"available\": false and an \"error\"\n";

enum { MAX_ARCHS = 64, MAX_GPUS = 64, ERROR_LEN = 512 };

struct gpu {
    int index;
    char name[256];
    int arch, sms; /* compute capability as major * 10 + minor */
    size_t memory;
};

enum cache_state { CACHE_UNRESOLVED, CACHE_NOT_CREATED, CACHE_REFUSED, CACHE_READY };

/* Everything info reports, gathered once and then printed as text or JSON. */
struct info {
    const nj_templates *templates; /* NULL: see templates_error */
    char templates_error[ERROR_LEN];

    int nvrtc_ok, nvrtc_major, nvrtc_minor, n_archs;
    int archs[MAX_ARCHS];
    char nvrtc_error[ERROR_LEN];

    int driver_ok, driver_version, gpu_count, n_gpus;
    struct gpu gpus[MAX_GPUS];
    char driver_error[ERROR_LEN];

    enum cache_state cache;
    char *cache_root;
    char cache_error[ERROR_LEN]; /* CACHE_UNRESOLVED: why; CACHE_REFUSED: the reason */
    long entries, temps, problems; /* problems: folders 'normjit cache' would not enter */
    unsigned long long bytes;
    int writable;
};

static void copy_last_error(char *to)
{
    snprintf(to, ERROR_LEN, "%s", normjit_last_error());
}

static int count_entry(const nj_cache_file *f, void *user)
{
    struct info *in = user;
    if (f->is_temp) {
        in->temps++;
    } else {
        in->entries++;
        if (S_ISREG(f->st.st_mode))
            in->bytes += (unsigned long long)f->st.st_size;
    }
    return 0;
}

static void count_problem(const char *path, const char *why, void *user)
{
    (void)path, (void)why;
    ((struct info *)user)->problems++;
}

static void gather_nvrtc(struct info *in)
{
    const nj_nvrtc *nvrtc;
    int n = 0;
    if (nj_nvrtc_load(&nvrtc) != NORMJIT_OK) {
        copy_last_error(in->nvrtc_error);
        return;
    }
    in->nvrtc_ok = 1;
    nvrtc->version(&in->nvrtc_major, &in->nvrtc_minor);
    if (nvrtc->get_num_supported_archs(&n) == NVRTC_SUCCESS && n > 0 && n <= MAX_ARCHS &&
        nvrtc->get_supported_archs(in->archs) == NVRTC_SUCCESS)
        in->n_archs = n;
}

static void gather_driver(struct info *in)
{
    const nj_driver *drv;
    const nj_driver_extra *x;
    int i;
    if (nj_driver_extra_load(&drv, &x) != NORMJIT_OK) {
        copy_last_error(in->driver_error);
        return;
    }
    in->driver_ok = 1;
    drv->driver_get_version(&in->driver_version);
    x->device_get_count(&in->gpu_count);
    for (i = 0; i < in->gpu_count && in->n_gpus < MAX_GPUS; i++) {
        struct gpu *g = &in->gpus[in->n_gpus];
        nj_device_info info;
        CUdevice dev;
        if (x->device_get(&dev, i) != CUDA_SUCCESS || nj_device_query(drv, dev, &info) != NORMJIT_OK)
            continue;
        g->index = i;
        snprintf(g->name, sizeof g->name, "%s", info.name);
        g->arch = info.arch;
        g->sms = info.sms;
        g->memory = (size_t)info.memory_mib << 20;
        in->n_gpus++;
    }
}

/* The cache root as the library judges it (nj_disk_root_check), and what 'normjit cache' sees. */
static void gather_cache(struct info *in, const char *dir)
{
    char why[PATH_MAX + 256];
    int r;
    if (nj_disk_cache_resolve(dir, &in->cache_root) != NORMJIT_OK) {
        copy_last_error(in->cache_error);
        return;
    }
    r = nj_disk_root_check(in->cache_root, why, sizeof why);
    if (r == NJ_ROOT_MISSING) {
        in->cache = CACHE_NOT_CREATED;
    } else if (r == NJ_ROOT_REFUSED) {
        in->cache = CACHE_REFUSED;
        snprintf(in->cache_error, ERROR_LEN, "%.500s", why);
    } else if (nj_cache_walk(in->cache_root, count_entry, count_problem, in) != 0) {
        in->cache = CACHE_REFUSED;
        snprintf(in->cache_error, ERROR_LEN, "cannot be read: %s", strerror(errno));
    } else {
        in->cache = CACHE_READY;
        in->writable = access(in->cache_root, W_OK) == 0;
    }
}

static void gather(struct info *in, const char *cache_dir)
{
    memset(in, 0, sizeof *in);
    if (nj_templates_get(&in->templates) != NORMJIT_OK) {
        in->templates = NULL;
        copy_last_error(in->templates_error);
    }
    gather_nvrtc(in);
    gather_driver(in);
    gather_cache(in, cache_dir);
}

static void print_text(const struct info *in)
{
    int i;
    printf("normjit:  %s\n", normjit_version_string());
    if (in->templates)
        printf("kernels:  %s templates, digest %s\n", in->templates->origin, in->templates->digest);
    else
        printf("kernels:  unusable: %s\n", in->templates_error);

    if (in->nvrtc_ok) {
        printf("nvrtc:    %d.%d", in->nvrtc_major, in->nvrtc_minor);
        if (in->n_archs) {
            printf(" (compiles for");
            for (i = 0; i < in->n_archs; i++)
                printf(" sm_%d", in->archs[i]);
            printf(")");
        }
        printf("\n");
    } else {
        printf("nvrtc:    not available: %s\n", in->nvrtc_error);
    }

    if (in->driver_ok) {
        printf("driver:   CUDA %d.%d, %d GPU%s\n", in->driver_version / 1000,
               in->driver_version % 1000 / 10, in->gpu_count, in->gpu_count == 1 ? "" : "s");
        for (i = 0; i < in->n_gpus; i++) {
            const struct gpu *g = &in->gpus[i];
            printf("gpu %d:    %s, sm_%d, %d SMs, %.1f GiB\n", g->index, g->name, g->arch,
                   g->sms, (double)g->memory / (1u << 30));
        }
    } else {
        printf("driver:   not available: %s\n", in->driver_error);
    }

    switch (in->cache) {
    case CACHE_UNRESOLVED:
        printf("cache:    none: %s\n", in->cache_error);
        break;
    case CACHE_NOT_CREATED:
        printf("cache:    %s (not created yet)\n", in->cache_root);
        break;
    case CACHE_REFUSED:
        printf("cache:    %s (not used: %s)\n", in->cache_root, in->cache_error);
        break;
    case CACHE_READY:
        printf("cache:    %s: %ld entr%s, %.1f MiB", in->cache_root, in->entries,
               in->entries == 1 ? "y" : "ies", (double)in->bytes / (1u << 20));
        if (in->temps)
            printf(", %ld temporary file%s", in->temps, in->temps == 1 ? "" : "s");
        if (in->problems)
            printf(", %ld folder%s not inspected (see 'normjit cache verify')", in->problems,
                   in->problems == 1 ? "" : "s");
        printf("%s\n", in->writable ? "" : " (read-only)");
        break;
    }
}

/* `"key": "value"` with the value escaped; `sep` goes before it. */
static void json_field(const char *sep, const char *key, const char *value)
{
    printf("%s\"%s\": ", sep, key);
    nj_json_string(stdout, value);
}

static void print_json(const struct info *in)
{
    static const char *const cache_states[] = {
        [CACHE_UNRESOLVED] = "unresolved",
        [CACHE_NOT_CREATED] = "not_created",
        [CACHE_REFUSED] = "refused",
        [CACHE_READY] = "ready",
    };
    char text[64];
    int i;

    json_field("{\n  ", "version", normjit_version_string());

    printf(",\n  \"kernels\": {\"available\": %s", in->templates ? "true" : "false");
    if (in->templates) {
        json_field(", ", "origin", in->templates->origin);
        json_field(", ", "digest", in->templates->digest);
    } else {
        json_field(", ", "error", in->templates_error);
    }

    printf("},\n  \"nvrtc\": {\"available\": %s", in->nvrtc_ok ? "true" : "false");
    if (in->nvrtc_ok) {
        printf(", \"version\": \"%d.%d\", \"archs\": [", in->nvrtc_major, in->nvrtc_minor);
        for (i = 0; i < in->n_archs; i++)
            printf("%s\"sm_%d\"", i ? ", " : "", in->archs[i]);
        printf("]");
    } else {
        json_field(", ", "error", in->nvrtc_error);
    }

    printf("},\n  \"driver\": {\"available\": %s", in->driver_ok ? "true" : "false");
    if (in->driver_ok)
        printf(", \"cuda_version\": \"%d.%d\", \"gpu_count\": %d", in->driver_version / 1000,
               in->driver_version % 1000 / 10, in->gpu_count);
    else
        json_field(", ", "error", in->driver_error);

    printf("},\n  \"gpus\": [");
    for (i = 0; i < in->n_gpus; i++) {
        const struct gpu *g = &in->gpus[i];
        printf("%s\n    {\"index\": %d", i ? "," : "", g->index);
        json_field(", ", "name", g->name);
        snprintf(text, sizeof text, "sm_%d", g->arch);
        json_field(", ", "arch", text);
        printf(", \"sms\": %d, \"memory_bytes\": %zu}", g->sms, g->memory);
    }
    printf("%s],\n  \"cache\": {", in->n_gpus ? "\n  " : "");
    json_field("", "state", cache_states[in->cache]);
    json_field(", ", "dir", in->cache_root);
    if (in->cache == CACHE_UNRESOLVED)
        json_field(", ", "error", in->cache_error);
    else if (in->cache == CACHE_REFUSED)
        json_field(", ", "reason", in->cache_error);
    else if (in->cache == CACHE_READY)
        printf(", \"entries\": %ld, \"bytes\": %llu, \"temporary_files\": %ld, "
               "\"folders_not_inspected\": %ld, \"writable\": %s",
               in->entries, in->bytes, in->temps, in->problems, in->writable ? "true" : "false");
    printf("}\n}\n");
}

int nj_cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {{"cache-dir", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *cache_dir = NULL;
    struct info in;
    char err[128];
    int c, json = 0;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cache_dir = optarg;
            break;
        case 'j':
            json = 1;
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

    gather(&in, cache_dir);
    if (json)
        print_json(&in);
    else
        print_text(&in);
    free(in.cache_root);
    return NJ_EXIT_OK;
}
