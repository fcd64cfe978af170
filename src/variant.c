#include "variant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dtype_names[] = {NULL, "f32", "f16", "bf16"};
static const char *op_names[] = {NULL, "rmsnorm", "layernorm"};
static const char *storage_names[] = {"reg", "stream"};
static const char *bucket_names[] = {"decode", "prefill", "large"};

int nj_dtype_size(int dtype)
{
    switch (dtype) {
    case NORMJIT_DTYPE_F32:
        return 4;
    case NORMJIT_DTYPE_F16:
    case NORMJIT_DTYPE_BF16:
        return 2;
    default:
        return 0;
    }
}

static int name_index(const char *const *names, int n, const char *s)
{
    int i;
    for (i = 0; i < n; i++)
        if (names[i] && !strcmp(names[i], s))
            return i;
    return -1;
}

const char *nj_dtype_name(int dtype)
{
    return dtype >= 1 && dtype <= 3 ? dtype_names[dtype] : NULL;
}

int nj_dtype_parse(const char *s)
{
    int i = name_index(dtype_names, 4, s);
    return i < 0 ? 0 : i;
}

const char *nj_op_name(int op)
{
    return op >= 1 && op <= 2 ? op_names[op] : NULL;
}

int nj_op_parse(const char *s)
{
    int i = name_index(op_names, 3, s);
    return i < 0 ? 0 : i;
}

int nj_bucket_of_rows(int64_t rows)
{
    if (rows <= NJ_DECODE_MAX_ROWS)
        return NJ_BUCKET_DECODE;
    return rows <= NJ_PREFILL_MAX_ROWS ? NJ_BUCKET_PREFILL : NJ_BUCKET_LARGE;
}

const char *nj_bucket_name(int bucket)
{
    return bucket >= 0 && bucket < NJ_BUCKETS ? bucket_names[bucket] : "?";
}

uint64_t nj_request_key(const nj_request *r)
{
    /* hidden < 2^25, every other field fits in 4 bits: one word, never 0. */
    return (uint64_t)r->hidden | (uint64_t)r->op << 32 | (uint64_t)r->tx << 36 |
           (uint64_t)r->ty << 40 | (uint64_t)r->tw << 44 | (uint64_t)r->vec << 48 |
           (uint64_t)r->bucket << 56;
}

void nj_request_of_variant(const nj_variant *v, int bucket, nj_request *r)
{
    r->op = v->op;
    r->tx = v->tx;
    r->ty = v->ty;
    r->tw = v->tw;
    r->vec = v->k.vec;
    r->bucket = bucket;
    r->hidden = v->hidden;
}

int nj_variant_vectors_per_thread(const nj_variant *v)
{
    int64_t nv = v->hidden / v->k.vec;
    int64_t per_cta = (nv + v->k.cluster - 1) / v->k.cluster;
    return (int)((per_cta + v->k.tpr - 1) / v->k.tpr);
}

/* Names for printing any variant, legal or not (an illegal one is named in its error). */
static const char *shown(const char *name)
{
    return name ? name : "?";
}

static const char *storage_name(int storage)
{
    return storage == NJ_STORAGE_REG || storage == NJ_STORAGE_STREAM ? storage_names[storage]
                                                                      : "?";
}

int nj_variant_equal(const nj_variant *a, const nj_variant *b)
{
    return a->op == b->op && a->tx == b->tx && a->ty == b->ty && a->tw == b->tw &&
           a->hidden == b->hidden && a->k.vec == b->k.vec && a->k.tpr == b->k.tpr &&
           a->k.rpc == b->k.rpc && a->k.cluster == b->k.cluster && a->k.storage == b->k.storage &&
           a->k.occ == b->k.occ;
}

void nj_variant_name(const nj_variant *v, char *out, size_t size)
{
    snprintf(out, size, "nj_%s_%s_%s_%s_h%lld_v%d_t%d_r%d_c%d_o%d_%s", shown(nj_op_name(v->op)),
             shown(nj_dtype_name(v->tx)), shown(nj_dtype_name(v->ty)),
             shown(nj_dtype_name(v->tw)), (long long)v->hidden, v->k.vec, v->k.tpr, v->k.rpc,
             v->k.cluster, v->k.occ, storage_name(v->k.storage));
}

void nj_variant_describe(const nj_variant *v, nj_buf *out)
{
    nj_buf_printf(out,
                  "op=%s x=%s y=%s w=%s hidden=%lld vec=%d tpr=%d rpc=%d cluster=%d occ=%d "
                  "storage=%s",
                  shown(nj_op_name(v->op)), shown(nj_dtype_name(v->tx)),
                  shown(nj_dtype_name(v->ty)), shown(nj_dtype_name(v->tw)), (long long)v->hidden,
                  v->k.vec, v->k.tpr, v->k.rpc, v->k.cluster, v->k.occ,
                  storage_name(v->k.storage));
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long x;
    if (!*s)
        return 0;
    x = strtoll(s, &end, 10);
    if (*end || x < lo || x > hi)
        return 0;
    *out = x;
    return 1;
}

int nj_variant_parse(const char *s, nj_variant *v)
{
    /* Fields in any order, each exactly once. */
    enum { F_OP, F_X, F_Y, F_W, F_HIDDEN, F_VEC, F_TPR, F_RPC, F_CLUSTER, F_OCC, F_STORAGE, F_N };
    static const char *fields[F_N] = {"op",  "x",   "y",       "w",   "hidden", "vec",
                                      "tpr", "rpc", "cluster", "occ", "storage"};
    char word[64];
    int seen[F_N] = {0};
    int i, n;

    memset(v, 0, sizeof *v);
    while (*s) {
        char *eq;
        long long x = 0;
        int f, ok;
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        for (n = 0; s[n] && s[n] != ' '; n++)
            ;
        if (n >= (int)sizeof word)
            return nj_fail(NORMJIT_EFORMAT, "knob word too long: '%.*s...'", 32, s);
        memcpy(word, s, (size_t)n);
        word[n] = '\0';
        s += n;
        eq = strchr(word, '=');
        if (!eq)
            return nj_fail(NORMJIT_EFORMAT, "expected key=value, got '%s'", word);
        *eq++ = '\0';
        f = name_index(fields, F_N, word);
        if (f < 0)
            return nj_fail(NORMJIT_EFORMAT, "unknown knob '%s'", word);
        if (seen[f]++)
            return nj_fail(NORMJIT_EFORMAT, "knob '%s' given twice", word);
        switch (f) {
        case F_OP:
            ok = (v->op = nj_op_parse(eq)) != 0;
            break;
        case F_X:
            ok = (v->tx = nj_dtype_parse(eq)) != 0;
            break;
        case F_Y:
            ok = (v->ty = nj_dtype_parse(eq)) != 0;
            break;
        case F_W:
            ok = (v->tw = nj_dtype_parse(eq)) != 0;
            break;
        case F_STORAGE:
            ok = (v->k.storage = name_index(storage_names, 2, eq)) >= 0;
            break;
        case F_HIDDEN:
            ok = parse_int(eq, 1, NJ_MAX_HIDDEN, &x);
            v->hidden = x;
            break;
        case F_OCC:
            ok = parse_int(eq, 0, 32, &x);
            v->k.occ = (int)x;
            break;
        default:
            ok = parse_int(eq, 1, NJ_MAX_CTA_THREADS, &x);
            if (f == F_VEC)
                v->k.vec = (int)x;
            else if (f == F_TPR)
                v->k.tpr = (int)x;
            else if (f == F_RPC)
                v->k.rpc = (int)x;
            else
                v->k.cluster = (int)x;
            break;
        }
        if (!ok)
            return nj_fail(NORMJIT_EFORMAT, "bad value '%s' for knob '%s'", eq, word);
    }
    for (i = 0; i < F_N; i++)
        if (!seen[i])
            return nj_fail(NORMJIT_EFORMAT, "knob '%s' missing", fields[i]);
    return NORMJIT_OK;
}

static int is_pow2(int x)
{
    return x > 0 && (x & (x - 1)) == 0;
}

int nj_variant_check(const nj_variant *v, int arch)
{
    const nj_knobs *k = &v->k;
    int sx = nj_dtype_size(v->tx), sy = nj_dtype_size(v->ty), sw = nj_dtype_size(v->tw);
    int threads = k->tpr * k->rpc;

    if (!nj_op_name(v->op) || !sx || !sy || !sw)
        return nj_fail(NORMJIT_EUNSUPPORTED, "unknown op or dtype in variant");
    if (v->tw != v->tx && v->tw != NORMJIT_DTYPE_F32)
        return nj_fail(NORMJIT_EUNSUPPORTED, "weight dtype must be the input dtype or f32");
    if (v->hidden < 1 || v->hidden > NJ_MAX_HIDDEN)
        return nj_fail(NORMJIT_EUNSUPPORTED, "hidden size %lld outside 1..%d",
                       (long long)v->hidden, NJ_MAX_HIDDEN);
    if (!is_pow2(k->vec) || v->hidden % k->vec || k->vec * sx > NJ_MAX_ACCESS_BYTES)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "vec=%d must be a power of two dividing hidden (%lld) with at most %d "
                       "bytes of x per access",
                       k->vec, (long long)v->hidden, NJ_MAX_ACCESS_BYTES);
    if (k->tpr < 1 || (k->tpr < 32 && !is_pow2(k->tpr)) || (k->tpr > 32 && k->tpr % 32))
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "tpr=%d must be a power of two up to 32 or a multiple of 32", k->tpr);
    if (k->rpc < 1 || threads > NJ_MAX_CTA_THREADS || threads % 32)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "tpr*rpc=%d threads per CTA must be a multiple of 32 up to %d", threads,
                       NJ_MAX_CTA_THREADS);
    if (k->storage != NJ_STORAGE_REG && k->storage != NJ_STORAGE_STREAM)
        return nj_fail(NORMJIT_EUNSUPPORTED, "unknown storage %d", k->storage);
    if (k->occ < 0 || k->occ * threads > NJ_MAX_SM_THREADS)
        return nj_fail(NORMJIT_EUNSUPPORTED, "occ=%d CTAs of %d threads exceed an SM's %d threads",
                       k->occ, threads, NJ_MAX_SM_THREADS);
    if (k->cluster < 1 || k->cluster > NJ_MAX_CLUSTER)
        return nj_fail(NORMJIT_EUNSUPPORTED, "cluster=%d outside 1..%d", k->cluster,
                       NJ_MAX_CLUSTER);
    if (k->cluster > 1 && (arch < 90 || k->rpc != 1 || k->storage != NJ_STORAGE_REG))
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "cluster=%d needs sm_90 or newer (have sm_%d), rpc=1 and storage=reg",
                       k->cluster, arch);
    if (k->cluster > 1 && (v->hidden / k->vec) < k->cluster)
        return nj_fail(NORMJIT_EUNSUPPORTED, "cluster=%d exceeds the row's %lld vectors",
                       k->cluster, (long long)(v->hidden / k->vec));
    if (k->storage == NJ_STORAGE_REG &&
        nj_variant_vectors_per_thread(v) * k->vec * sx > NJ_MAX_THREAD_BYTES * 2)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "storage=reg would hold %d bytes per thread (at most %d): more threads, "
                       "a cluster or storage=stream",
                       nj_variant_vectors_per_thread(v) * k->vec * sx, NJ_MAX_THREAD_BYTES * 2);
    return NORMJIT_OK;
}
