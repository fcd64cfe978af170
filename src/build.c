#include "build.h"

#include "cache_key.h"
#include "render.h"
#include "templates.h"

#include <string.h>
#include <time.h>

/* Milliseconds on a monotonic clock, for the debug log of where a first call's time goes. */
static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

void nj_builder_init(nj_builder *b, int arch, const nj_nvrtc *nvrtc, nj_disk_cache *disk,
                     const nj_logger *log)
{
    memset(b, 0, sizeof *b);
    b->arch = arch;
    b->nvrtc = nvrtc;
    b->disk = disk;
    b->log = log;
    pthread_mutex_init(&b->mu, NULL);
}

void nj_builder_free(nj_builder *b)
{
    pthread_mutex_destroy(&b->mu);
}

int nj_builder_target(nj_builder *b, const nj_target **out)
{
    int status = NORMJIT_OK;
    pthread_mutex_lock(&b->mu);
    if (!b->target_ready) {
        const double t0 = now_ms();
        if (!b->nvrtc)
            status = nj_nvrtc_load(&b->nvrtc);
        if (status == NORMJIT_OK)
            status = nj_target_init(&b->target, b->nvrtc, b->arch);
        b->target_ready = status == NORMJIT_OK;
        if (b->target_ready)
            nj_log(b->log, NORMJIT_LOG_DEBUG, "NVRTC %d.%d loaded for %s in %.1f ms",
                   b->target.nvrtc_major, b->target.nvrtc_minor, b->target.dir_name,
                   now_ms() - t0);
    }
    pthread_mutex_unlock(&b->mu);
    *out = status == NORMJIT_OK ? &b->target : NULL;
    return status;
}

int nj_build(nj_builder *b, const nj_variant *v, int fresh, nj_built *out)
{
    const nj_templates *templates;
    const nj_target *target;
    nj_buf source = {0}, variant = {0}, key = {0};
    nj_key_inputs in;
    int status;
    double t0, t1;

    memset(out, 0, sizeof *out);
    if ((status = nj_variant_check(v, b->arch)) != NORMJIT_OK ||
        (status = nj_templates_get(&templates)) != NORMJIT_OK ||
        (status = nj_builder_target(b, &target)) != NORMJIT_OK)
        return status;
    if ((status = nj_render(templates, v, &source, out->name)) != NORMJIT_OK)
        goto out;
    nj_variant_describe(v, &variant);
    in.library_version = NORMJIT_VERSION_STRING;
    in.templates_digest = templates->digest;
    in.target = target;
    in.kernel_name = out->name;
    in.variant = variant.data ? variant.data : "";
    in.source = source.data;
    in.source_len = source.len;
    if ((status = nj_buf_status(&variant)) != NORMJIT_OK ||
        (status = nj_cache_key(&in, &key, out->digest)) != NORMJIT_OK)
        goto out;

    t0 = now_ms();
    if (b->disk && !fresh &&
        nj_disk_cache_load(b->disk, target->dir_name, out->digest, key.data, key.len,
                           &out->image)) {
        out->got = NJ_GOT_FROM_DISK;
        out->cached = 1;
        nj_log(b->log, NORMJIT_LOG_DEBUG, "kernel %s: read from the disk cache in %.2f ms",
               out->name, now_ms() - t0);
        goto out;
    }
    t0 = now_ms();
    if ((status = nj_compile(b->nvrtc, target, source.data, out->name, &out->image)) !=
        NORMJIT_OK)
        goto out;
    out->got = NJ_GOT_COMPILED;
    t1 = now_ms();
    /* A kernel that cannot be stored still runs from memory; the caller learns it was not
       cached (the disk cache has warned why). */
    out->cached = b->disk && nj_disk_cache_store(b->disk, target->dir_name, out->digest,
                                                 key.data, key.len, out->image.data,
                                                 out->image.len) == NORMJIT_OK;
    nj_log(b->log, NORMJIT_LOG_DEBUG, "kernel %s: compiled in %.1f ms, stored in %.1f ms",
           out->name, t1 - t0, now_ms() - t1);
out:
    nj_buf_free(&source);
    nj_buf_free(&variant);
    nj_buf_free(&key);
    if (status != NORMJIT_OK)
        nj_buf_free(&out->image);
    return status;
}

void nj_build_forget(nj_builder *b, const nj_built *built)
{
    if (b->disk && b->target_ready)
        nj_disk_cache_remove(b->disk, b->target.dir_name, built->digest);
}
