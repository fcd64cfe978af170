#include "kernels.h"

#include "cache_key.h"
#include "ctx.h"
#include "render.h"
#include "templates.h"

#include <stdlib.h>
#include <string.h>

#define NJ_TABLE_INITIAL 64

static nj_table *table_new(size_t capacity)
{
    nj_table *t = calloc(1, sizeof *t);
    size_t i;
    if (!t)
        return NULL;
    t->slots = malloc(capacity * sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    for (i = 0; i < capacity; i++)
        atomic_init(&t->slots[i], NULL);
    t->mask = capacity - 1;
    return t;
}

static void table_put(nj_table *t, nj_launch *e)
{
    size_t i = (size_t)nj_key_hash(e->key) & t->mask;
    while (atomic_load_explicit(&t->slots[i], memory_order_relaxed))
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slots[i], e, memory_order_release);
    t->count++;
}

int nj_kernels_init(nj_kernels *k)
{
    nj_table *t = table_new(NJ_TABLE_INITIAL);
    memset(k, 0, sizeof *k);
    if (!t)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    atomic_init(&k->table, t);
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    return NORMJIT_OK;
}

void nj_kernels_free(nj_kernels *k)
{
    nj_table *t = atomic_load(&k->table);
    while (t) {
        nj_table *next = t->retired;
        free(t->slots);
        free(t);
        t = next;
    }
    while (k->launches) {
        nj_launch *next = k->launches->all;
        free(k->launches);
        k->launches = next;
    }
    while (k->modules) {
        nj_module *next = k->modules->next;
        free(k->modules);
        k->modules = next;
    }
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
}

/* Publish a launch (kernels.mu held): grow the table first if it is half full. */
static int publish(nj_kernels *k, nj_launch *e)
{
    nj_table *t = atomic_load_explicit(&k->table, memory_order_relaxed);
    if ((t->count + 1) * 2 > t->mask + 1) {
        nj_table *bigger = table_new((t->mask + 1) * 2);
        size_t i;
        if (!bigger)
            return nj_fail(NORMJIT_ENOMEM, "out of memory growing the kernel table");
        for (i = 0; i <= t->mask; i++) {
            nj_launch *old = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
            if (old)
                table_put(bigger, old);
        }
        bigger->retired = t;
        atomic_store_explicit(&k->table, bigger, memory_order_release);
        t = bigger;
    }
    e->all = k->launches;
    k->launches = e;
    table_put(t, e);
    return NORMJIT_OK;
}

static nj_module *find_module(nj_kernels *k, const nj_variant *v)
{
    nj_module *m;
    for (m = k->modules; m; m = m->next)
        if (nj_variant_equal(&m->v, v))
            return m;
    return NULL;
}

static int is_inflight(nj_kernels *k, const nj_variant *v)
{
    nj_inflight *f;
    for (f = k->inflight; f; f = f->next)
        if (nj_variant_equal(&f->v, v))
            return 1;
    return 0;
}

static void remove_inflight(nj_kernels *k, const nj_variant *v)
{
    nj_inflight **p;
    for (p = &k->inflight; *p; p = &(*p)->next) {
        if (nj_variant_equal(&(*p)->v, v)) {
            nj_inflight *f = *p;
            *p = f->next;
            free(f);
            return;
        }
    }
}

/* Load an image into a module and find the kernel; on failure nothing stays loaded. */
static CUresult load_image(normjit_ctx *ctx, const void *image, const char *name, CUmodule *mod,
                           CUfunction *fn, const char **what)
{
    CUresult res;
    *what = "cuModuleLoadData";
    res = ctx->drv->module_load_data(mod, image);
    if (res != CUDA_SUCCESS)
        return res;
    *what = "cuModuleGetFunction";
    res = ctx->drv->module_get_function(fn, *mod, name);
    if (res != CUDA_SUCCESS) {
        ctx->drv->module_unload(*mod);
        *mod = NULL;
    }
    return res;
}

/*
 * Produce the module for `v`: the disk cache's image if valid and accepted by
 * the driver, else a fresh NVRTC compile (stored to disk). Runs without the
 * build lock, except for the brief target lookup.
 */
static int build(normjit_ctx *ctx, const nj_variant *v, nj_module *m, int *got)
{
    const nj_templates *templates;
    const nj_target *target;
    char name[NJ_KERNEL_NAME_MAX], digest[33];
    nj_buf source = {0}, variant = {0}, key = {0}, image = {0};
    nj_key_inputs in;
    CUresult res;
    const char *what;
    int status;

    if ((status = nj_variant_check(v, ctx->arch)) != NORMJIT_OK)
        return status;
    if ((status = nj_templates_get(&templates)) != NORMJIT_OK)
        return status;
    pthread_mutex_lock(&ctx->kernels.mu);
    status = nj_ctx_target(ctx, &target);
    pthread_mutex_unlock(&ctx->kernels.mu);
    if (status != NORMJIT_OK)
        return status;
    if ((status = nj_render(templates, v, &source, name)) != NORMJIT_OK)
        goto out;
    nj_variant_describe(v, &variant);
    in.library_version = NORMJIT_VERSION_STRING;
    in.templates_digest = templates->digest;
    in.target = target;
    in.kernel_name = name;
    in.variant = variant.data ? variant.data : "";
    in.source = source.data;
    in.source_len = source.len;
    if ((status = nj_buf_status(&variant)) != NORMJIT_OK ||
        (status = nj_cache_key(&in, &key, digest)) != NORMJIT_OK)
        goto out;

    if (ctx->disk &&
        nj_disk_cache_load(ctx->disk, target->dir_name, digest, key.data, key.len, &image)) {
        if (ctx->offline) {
            *got = NJ_GOT_FROM_DISK;
            goto out;
        }
        res = load_image(ctx, image.data, name, &m->module, &m->fn, &what);
        if (res == CUDA_SUCCESS) {
            *got = NJ_GOT_FROM_DISK;
            goto out;
        }
        /* A valid entry the driver refuses: drop it and compile afresh. */
        if (!(atomic_fetch_or(&ctx->warned, NJ_WARN_REFUSED_IMAGE) & NJ_WARN_REFUSED_IMAGE))
            nj_log(&ctx->log, NORMJIT_LOG_WARN,
                   "the driver refused cached kernel %s (%s: %s); removing it and recompiling",
                   name, what, nj_cu_name(ctx->drv, res));
        nj_disk_cache_remove(ctx->disk, target->dir_name, digest);
    }

    if ((status = nj_compile(ctx->nvrtc, target, source.data, name, &image)) != NORMJIT_OK)
        goto out;
    *got = NJ_GOT_COMPILED;
    if (!ctx->disk || nj_disk_cache_store(ctx->disk, target->dir_name, digest, key.data, key.len,
                                          image.data, image.len) != NORMJIT_OK)
        *got = NJ_GOT_UNCACHED; /* the store said why (warning, last error); the build goes on */
    if (!ctx->offline) {
        res = load_image(ctx, image.data, name, &m->module, &m->fn, &what);
        if (res != CUDA_SUCCESS) {
            status = nj_cu_fail(ctx->drv, res, what);
            nj_fail_prefix(status, "loading freshly compiled kernel %s", name);
        }
    }
out:
    nj_buf_free(&source);
    nj_buf_free(&variant);
    nj_buf_free(&key);
    nj_buf_free(&image);
    return status;
}

/*
 * The module for `v`, built by this thread or another (kernels.mu is held on
 * entry and on return).
 */
static int get_module(normjit_ctx *ctx, const nj_variant *v, nj_module **out, int *got)
{
    nj_kernels *k = &ctx->kernels;
    nj_inflight *f;
    nj_module *m;
    int status;

    for (;;) {
        if ((m = find_module(k, v)) != NULL) {
            *out = m;
            *got = NJ_GOT_IN_MEMORY;
            return NORMJIT_OK;
        }
        if (!is_inflight(k, v))
            break;
        pthread_cond_wait(&k->cv, &k->mu);
    }
    f = calloc(1, sizeof *f);
    m = calloc(1, sizeof *m);
    if (!f || !m) {
        free(f);
        free(m);
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    }
    f->v = *v;
    f->next = k->inflight;
    k->inflight = f;
    m->v = *v;

    pthread_mutex_unlock(&k->mu);
    status = build(ctx, v, m, got);
    pthread_mutex_lock(&k->mu);

    remove_inflight(k, v);
    if (status == NORMJIT_OK) {
        m->next = k->modules;
        k->modules = m;
        *out = m;
    } else {
        free(m);
    }
    pthread_cond_broadcast(&k->cv);
    return status;
}

int nj_kernels_get(normjit_ctx *ctx, const nj_request *r, const nj_launch **out,
                   nj_variant *variant, int *got)
{
    nj_kernels *k = &ctx->kernels;
    const nj_launch *found;
    nj_module *m = NULL;
    nj_launch *e;
    nj_plan plan;
    int status, got_local = NJ_GOT_IN_MEMORY;

    *out = NULL;
    nj_ctx_plan(ctx, r, &plan);
    if (variant)
        *variant = plan.v;

    pthread_mutex_lock(&k->mu);
    if (!ctx->offline && (found = nj_kernels_find(k, nj_request_key(r))) != NULL) {
        *out = found;
        status = NORMJIT_OK;
        goto done;
    }
    status = get_module(ctx, &plan.v, &m, &got_local);
    if (status != NORMJIT_OK || ctx->offline)
        goto done;
    /* Another thread may have published this request while we waited. */
    if ((found = nj_kernels_find(k, nj_request_key(r))) != NULL) {
        *out = found;
        goto done;
    }
    e = calloc(1, sizeof *e);
    if (!e) {
        status = nj_fail(NORMJIT_ENOMEM, "out of memory");
        goto done;
    }
    nj_launch_init(e, nj_request_key(r), &plan, m->fn, ctx->sm_count);
    if ((status = publish(k, e)) != NORMJIT_OK) {
        free(e);
        goto done;
    }
    *out = e;
done:
    pthread_mutex_unlock(&k->mu);
    if (got)
        *got = got_local;
    return status;
}

void nj_launch_init(nj_launch *e, uint64_t key, const nj_plan *p, CUfunction fn, int sm_count)
{
    e->key = key;
    e->fn = fn;
    e->threads = (unsigned)(p->v.k.tpr * p->v.k.rpc);
    e->rpc = (unsigned)p->v.k.rpc;
    e->cluster = (unsigned)p->v.k.cluster;
    e->max_groups = 0x7fffffffu / e->cluster;
    if (p->ctas_per_sm > 0 && sm_count > 0) {
        unsigned cap = (unsigned)(p->ctas_per_sm * sm_count) / e->cluster;
        e->max_groups = cap ? cap : 1;
    }
}

CUresult nj_launch_run(const nj_driver *drv, const nj_launch *e, const normjit_norm_args *a,
                       CUstream stream)
{
    /* The kernel's parameters, in the order of NJ_KERNEL_PARAMS (common.cuh). */
    const float w_offset = (a->flags & NORMJIT_NORM_WEIGHT_PLUS_ONE) ? 1.0f : 0.0f;
    void *params[] = {(void *)&a->x,           (void *)&a->y,    (void *)&a->weight,
                      (void *)&a->bias,        (void *)&a->rstd, (void *)&a->mean,
                      (void *)&a->rows,        (void *)&a->x_row_stride,
                      (void *)&a->y_row_stride, (void *)&a->eps,  (void *)&w_offset};
    int64_t groups = (a->rows + e->rpc - 1) / e->rpc;
    if (groups > e->max_groups)
        groups = e->max_groups;
    return drv->launch_kernel(e->fn, (unsigned)groups * e->cluster, 1, 1, e->threads, 1, 1, 0,
                              stream, params, NULL);
}

int nj_kernels_get_variant(normjit_ctx *ctx, const nj_variant *v, CUfunction *fn, int *got)
{
    nj_module *m = NULL;
    int status, got_local = NJ_GOT_IN_MEMORY;
    pthread_mutex_lock(&ctx->kernels.mu);
    status = get_module(ctx, v, &m, &got_local);
    pthread_mutex_unlock(&ctx->kernels.mu);
    *fn = status == NORMJIT_OK ? m->fn : NULL;
    if (got)
        *got = got_local;
    return status;
}
