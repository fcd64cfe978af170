#include "kernels.h"

#include <stdlib.h>
#include <string.h>

#define NJ_TABLE_INITIAL 64

/* Warnings logged once per table. */
enum { NJ_WARN_REFUSED_IMAGE = 1u << 0 };

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

int nj_kernels_init(nj_kernels *k, const nj_driver *drv, nj_builder *builder,
                    const nj_logger *log)
{
    nj_table *t = table_new(NJ_TABLE_INITIAL);
    memset(k, 0, sizeof *k);
    if (!t)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    atomic_init(&k->table, t);
    atomic_init(&k->warned, 0);
    k->drv = drv;
    k->builder = builder;
    k->log = log;
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
        if (k->drv && k->modules->module)
            k->drv->module_unload(k->modules->module);
        free(k->modules);
        k->modules = next;
    }
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
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
static CUresult load_image(const nj_driver *drv, const nj_built *b, nj_module *m,
                           const char **what)
{
    const int smem = nj_variant_stage_bytes(&m->v);
    CUresult res;
    *what = "cuModuleLoadData";
    res = drv->module_load_data(&m->module, b->image.data);
    if (res != CUDA_SUCCESS)
        return res;
    *what = "cuModuleGetFunction";
    res = drv->module_get_function(&m->fn, m->module, b->name);
    /* The kernel's static shared memory counts against the same 48 KB a launch gets without
       opting in, so the limit is raised for any dynamic shared memory (a stage of exactly
       48 KB failed to launch on the H100). */
    if (res == CUDA_SUCCESS && smem > 0) {
        *what = "cuFuncSetAttribute";
        res = drv->func_set_attribute(m->fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                      smem);
    }
    if (res != CUDA_SUCCESS) {
        drv->module_unload(m->module);
        m->module = NULL;
    }
    return res;
}

/*
 * Build and load `m->v` (without the table's lock): the disk cache's image
 * if the driver accepts it, else a fresh compile.
 */
static int build_module(nj_kernels *k, nj_module *m, int *how)
{
    nj_built b;
    const char *what;
    CUresult res;
    int status = nj_build(k->builder, &m->v, 0, &b);

    if (status == NORMJIT_OK && k->drv) {
        res = load_image(k->drv, &b, m, &what);
        if (res != CUDA_SUCCESS && b.got == NJ_GOT_FROM_DISK) {
            /* A valid entry the driver refuses: drop it and compile afresh. */
            if (!(atomic_fetch_or(&k->warned, NJ_WARN_REFUSED_IMAGE) & NJ_WARN_REFUSED_IMAGE))
                nj_log(k->log, NORMJIT_LOG_WARN,
                       "the driver refused cached kernel %s (%s: %s); removing it and "
                       "recompiling",
                       b.name, what, nj_cu_name(k->drv, res));
            nj_build_forget(k->builder, &b);
            nj_buf_free(&b.image);
            if ((status = nj_build(k->builder, &m->v, 1, &b)) == NORMJIT_OK)
                res = load_image(k->drv, &b, m, &what);
        }
        if (status == NORMJIT_OK && res != CUDA_SUCCESS) {
            status = nj_cu_fail(k->drv, res, what);
            nj_fail_prefix(status, "loading kernel %s", b.name);
        }
    }
    *how = b.got;
    m->cached = b.cached;
    nj_buf_free(&b.image);
    return status;
}

int nj_kernels_get(nj_kernels *k, const nj_variant *v, CUfunction *fn, nj_got *got)
{
    nj_inflight *f;
    nj_module *m;
    int status, how = NJ_GOT_IN_MEMORY;

    *fn = NULL;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        if ((m = find_module(k, v)) != NULL) {
            *fn = m->fn;
            if (got) {
                got->how = NJ_GOT_IN_MEMORY;
                got->cached = m->cached;
            }
            pthread_mutex_unlock(&k->mu);
            return NORMJIT_OK;
        }
        if (!is_inflight(k, v))
            break;
        pthread_cond_wait(&k->cv, &k->mu);
    }
    f = calloc(1, sizeof *f);
    m = calloc(1, sizeof *m);
    if (!f || !m) {
        pthread_mutex_unlock(&k->mu);
        free(f);
        free(m);
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    }
    f->v = *v;
    f->next = k->inflight;
    k->inflight = f;
    m->v = *v;

    pthread_mutex_unlock(&k->mu);
    status = build_module(k, m, &how);
    pthread_mutex_lock(&k->mu);

    remove_inflight(k, v);
    if (status == NORMJIT_OK) {
        m->next = k->modules;
        k->modules = m;
        *fn = m->fn;
        if (got) {
            got->how = how;
            got->cached = m->cached;
        }
    } else {
        free(m);
    }
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return status;
}

int nj_kernels_publish(nj_kernels *k, const nj_launch *e, const nj_launch **out)
{
    nj_table *t;
    nj_launch *copy;
    const nj_launch *found;
    int status = NORMJIT_OK;

    pthread_mutex_lock(&k->mu);
    /* Another thread may have published this key meanwhile. */
    if ((found = nj_kernels_find(k, e->key)) != NULL) {
        *out = found;
        goto done;
    }
    copy = malloc(sizeof *copy);
    if (!copy) {
        status = nj_fail(NORMJIT_ENOMEM, "out of memory");
        goto done;
    }
    *copy = *e;
    /* Grow the table first if it is half full. */
    t = atomic_load_explicit(&k->table, memory_order_relaxed);
    if ((t->count + 1) * 2 > t->mask + 1) {
        nj_table *bigger = table_new((t->mask + 1) * 2);
        size_t i;
        if (!bigger) {
            free(copy);
            status = nj_fail(NORMJIT_ENOMEM, "out of memory growing the kernel table");
            goto done;
        }
        for (i = 0; i <= t->mask; i++) {
            nj_launch *old = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
            if (old)
                table_put(bigger, old);
        }
        bigger->retired = t;
        atomic_store_explicit(&k->table, bigger, memory_order_release);
        t = bigger;
    }
    copy->all = k->launches;
    k->launches = copy;
    table_put(t, copy);
    *out = copy;
done:
    pthread_mutex_unlock(&k->mu);
    return status;
}
