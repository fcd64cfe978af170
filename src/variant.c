#include "variant.h"

#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dtype_names[] = {NULL, "f32", "f16", "bf16", "fp8e4m3", "fp8e5m2",
                                          "int8"};
static const char *const storage_names[] = {"reg", "stream", "staged"};
static const char *const wload_names[] = {"late", "early"};
static const char *const bucket_names[] = {"decode", "prefill", "large"};
static const char *const quant_names[] = {"none", "tensor", "token", "group"};
static const char *const cast_names[] = {"none", "llama", "gemma"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int name_index(const char *const *names, int n, const char *s)
{
    int i;
    for (i = 0; s && i < n; i++)
        if (names[i] && !strcmp(names[i], s))
            return i;
    return -1;
}

static const char *name_at(const char *const *names, int n, int i)
{
    return i >= 0 && i < n ? names[i] : NULL;
}

int nj_dtype_size(int dtype)
{
    switch (dtype) {
    case NORMJIT_DTYPE_F32:
        return 4;
    case NORMJIT_DTYPE_F16:
    case NORMJIT_DTYPE_BF16:
        return 2;
    case NORMJIT_DTYPE_FP8_E4M3:
    case NORMJIT_DTYPE_FP8_E5M2:
    case NORMJIT_DTYPE_INT8:
        return 1;
    default:
        return 0;
    }
}

const char *nj_dtype_name(int dtype)
{
    return name_at(dtype_names, COUNT(dtype_names), dtype);
}

int nj_dtype_parse(const char *s)
{
    int i = name_index(dtype_names, COUNT(dtype_names), s);
    return i < 0 ? 0 : i;
}

int nj_dtype_is_float(int dtype)
{
    return dtype == NORMJIT_DTYPE_F32 || dtype == NORMJIT_DTYPE_F16 ||
           dtype == NORMJIT_DTYPE_BF16;
}

int nj_dtype_is_code(int dtype)
{
    return dtype == NORMJIT_DTYPE_FP8_E4M3 || dtype == NORMJIT_DTYPE_FP8_E5M2 ||
           dtype == NORMJIT_DTYPE_INT8;
}

float nj_dtype_qmax(int dtype)
{
    switch (dtype) {
    case NORMJIT_DTYPE_FP8_E4M3:
        return 448.0f;
    case NORMJIT_DTYPE_FP8_E5M2:
        return 57344.0f;
    case NORMJIT_DTYPE_INT8:
        return 127.0f;
    default:
        return 0.0f;
    }
}

const char *nj_op_name(int op)
{
    const nj_op_desc *d = nj_op_desc_of(op);
    return d ? d->name : NULL;
}

int nj_op_parse(const char *s)
{
    const nj_op_desc *d = nj_op_desc_named(s);
    return d ? d->op : 0;
}

const char *nj_quant_name(int quant)
{
    return name_at(quant_names, COUNT(quant_names), quant);
}

const char *nj_cast_name(int cast)
{
    return name_at(cast_names, COUNT(cast_names), cast);
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

int nj_quant_parse(const char *name, int *ty, int *quant, int *group)
{
    static const struct {
        const char *prefix;
        int dtype;
    } dtypes[] = {{"fp8-", NORMJIT_DTYPE_FP8_E4M3},
                  {"fp8e4m3-", NORMJIT_DTYPE_FP8_E4M3},
                  {"fp8e5m2-", NORMJIT_DTYPE_FP8_E5M2},
                  {"int8-", NORMJIT_DTYPE_INT8}};
    static const struct {
        const char *name;
        int quant, group;
    } modes[] = {{"tensor", NORMJIT_QUANT_TENSOR, 0},
                 {"token", NORMJIT_QUANT_TOKEN, 0},
                 {"group64", NORMJIT_QUANT_GROUP, 64},
                 {"group128", NORMJIT_QUANT_GROUP, 128}};
    int i, j;
    *ty = *quant = *group = 0;
    if (!name)
        return 0;
    if (!strcmp(name, "none"))
        return 1;
    for (i = 0; i < COUNT(dtypes); i++) {
        size_t n = strlen(dtypes[i].prefix);
        if (strncmp(name, dtypes[i].prefix, n))
            continue;
        for (j = 0; j < COUNT(modes); j++)
            if (!strcmp(name + n, modes[j].name)) {
                *ty = dtypes[i].dtype;
                *quant = modes[j].quant;
                *group = modes[j].group;
                return 1;
            }
    }
    return 0;
}

int nj_spec_input_dtype(const nj_spec *s)
{
    return s->tr ? s->tr : s->tx;
}

int nj_spec_equal(const nj_spec *a, const nj_spec *b)
{
    return a->op == b->op && a->tx == b->tx && a->ty == b->ty && a->tw == b->tw &&
           a->tr == b->tr && a->quant == b->quant && a->group == b->group &&
           a->pow2 == b->pow2 && a->cast == b->cast && a->hidden == b->hidden;
}

int nj_spec_has_epilogue(const nj_spec *s)
{
    return s->tr || s->quant || s->group || s->pow2 || s->cast;
}

static unsigned log2_of(int x)
{
    unsigned n = 0;
    while (x > 1) {
        x >>= 1;
        n++;
    }
    return n;
}

uint64_t nj_request_key(const nj_request *r)
{
    /* Fixed bit fields (hidden < 2^25 is never 0, so neither is the key):
       hidden 25, op 3, x 3, y 3, w 3, r 3, quant 2, group 2, pow2 1, cast 2,
       log2(vec) 3, bucket 2: 52 bits. */
    const nj_spec *s = &r->s;
    uint64_t k = (uint64_t)s->hidden;
    unsigned shift = 25;
#define NJ_PUT_(value, bits) (k |= (uint64_t)(value) << shift, shift += (bits))
    NJ_PUT_(s->op, 3);
    NJ_PUT_(s->tx, 3);
    NJ_PUT_(s->ty, 3);
    NJ_PUT_(s->tw, 3);
    NJ_PUT_(s->tr, 3);
    NJ_PUT_(s->quant, 2);
    NJ_PUT_(s->group == 128 ? 2 : s->group == 64 ? 1 : 0, 2);
    NJ_PUT_(s->pow2 ? 1 : 0, 1);
    NJ_PUT_(s->cast, 2);
    NJ_PUT_(log2_of(r->vec), 3);
    NJ_PUT_(r->bucket, 2);
#undef NJ_PUT_
    return k;
}

void nj_request_of_variant(const nj_variant *v, int bucket, nj_request *r)
{
    r->s = v->s;
    r->vec = v->k.vec;
    r->bucket = bucket;
}

int nj_request_same_config(const nj_request *a, const nj_request *b)
{
    return nj_spec_equal(&a->s, &b->s) && a->vec == b->vec;
}

/* Staged storage holds the row as register storage does. */
static int held_storage(int storage)
{
    return storage == NJ_STORAGE_STAGED ? NJ_STORAGE_REG : storage;
}

int nj_knobs_same_layout(const nj_knobs *a, const nj_knobs *b)
{
    return a->vec == b->vec && a->tpr == b->tpr && a->cluster == b->cluster &&
           held_storage(a->storage) == held_storage(b->storage);
}

int nj_variant_vectors_per_thread(const nj_variant *v)
{
    int64_t nv = v->s.hidden / v->k.vec;
    int64_t per_cta = (nv + v->k.cluster - 1) / v->k.cluster;
    return (int)((per_cta + v->k.tpr - 1) / v->k.tpr);
}

int nj_variant_stage_bytes(const nj_variant *v)
{
    int per_vec;
    if (v->k.storage != NJ_STORAGE_STAGED)
        return 0;
    per_vec = v->k.vec * (nj_dtype_size(v->s.tx) + (v->s.tr ? nj_dtype_size(v->s.tr) : 0));
    return 2 * nj_variant_vectors_per_thread(v) * v->k.tpr * v->k.rpc * per_vec;
}

int nj_arch_max_dynamic_smem(int arch)
{
    /* The CUDA programming guide's opt-in limits per compute capability. */
    if (arch < 80)
        return NJ_DEFAULT_DYNAMIC_SMEM;
    if (arch == 80 || arch == 87)
        return 163 * 1024;
    if (arch == 90 || arch == 100 || arch == 103)
        return 227 * 1024;
    return 99 * 1024;
}

/* Names for printing any variant, legal or not (an illegal one is named in its error). */
static const char *shown(const char *name)
{
    return name ? name : "?";
}

const char *nj_storage_name(int storage)
{
    return name_at(storage_names, COUNT(storage_names), storage);
}

static const char *storage_name(int storage)
{
    return shown(nj_storage_name(storage));
}

int nj_variant_equal(const nj_variant *a, const nj_variant *b)
{
    return nj_spec_equal(&a->s, &b->s) && a->k.vec == b->k.vec && a->k.tpr == b->k.tpr &&
           a->k.rpc == b->k.rpc && a->k.cluster == b->k.cluster &&
           a->k.storage == b->k.storage && a->k.occ == b->k.occ && a->k.wload == b->k.wload;
}

void nj_variant_name(const nj_variant *v, char *out, size_t size)
{
    const nj_spec *s = &v->s;
    int n = snprintf(out, size, "nj_%s_%s_%s_%s_h%lld_v%d_t%d_r%d_c%d_o%d_%s",
                     shown(nj_op_name(s->op)), shown(nj_dtype_name(s->tx)),
                     shown(nj_dtype_name(s->ty)), shown(nj_dtype_name(s->tw)),
                     (long long)s->hidden, v->k.vec, v->k.tpr, v->k.rpc, v->k.cluster, v->k.occ,
                     storage_name(v->k.storage));
    size_t used = n < 0 ? 0 : (size_t)n < size ? (size_t)n : size;
    if (v->k.wload == NJ_WLOAD_EARLY && used < size)
        used += (size_t)snprintf(out + used, size - used, "_we");
    if (s->tr && used < size)
        used += (size_t)snprintf(out + used, size - used, "_r%s", shown(nj_dtype_name(s->tr)));
    if (s->quant && used < size)
        /* %.0d prints nothing for a zero group */
        used += (size_t)snprintf(out + used, size - used, "_q%s%.0d%s",
                                 shown(nj_quant_name(s->quant)), s->group, s->pow2 ? "p2" : "");
    if (s->cast && used < size)
        snprintf(out + used, size - used, "_c%s", shown(nj_cast_name(s->cast)));
}

void nj_variant_describe(const nj_variant *v, nj_buf *out)
{
    const nj_spec *s = &v->s;
    nj_buf_printf(out,
                  "op=%s x=%s y=%s w=%s hidden=%lld vec=%d tpr=%d rpc=%d cluster=%d occ=%d "
                  "storage=%s",
                  shown(nj_op_name(s->op)), shown(nj_dtype_name(s->tx)),
                  shown(nj_dtype_name(s->ty)), shown(nj_dtype_name(s->tw)), (long long)s->hidden,
                  v->k.vec, v->k.tpr, v->k.rpc, v->k.cluster, v->k.occ,
                  storage_name(v->k.storage));
    /* Early weights and the epilogue only when so, so other variants keep their text. */
    if (v->k.wload)
        nj_buf_printf(out, " wload=%s", shown(name_at(wload_names, COUNT(wload_names), v->k.wload)));
    if (s->tr)
        nj_buf_printf(out, " r=%s", shown(nj_dtype_name(s->tr)));
    if (s->quant)
        nj_buf_printf(out, " quant=%s group=%d pow2=%d", shown(nj_quant_name(s->quant)),
                      s->group, s->pow2);
    if (s->cast)
        nj_buf_printf(out, " cast=%s", shown(nj_cast_name(s->cast)));
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

int nj_variant_parse_fields(const char *s, nj_variant *v, unsigned flags, unsigned *seen_out)
{
    /* Fields in any order, each at most once, in the order of enum nj_variant_field. */
    enum {
        F_OP, F_X, F_Y, F_W, F_HIDDEN, F_VEC, F_TPR, F_RPC, F_CLUSTER, F_OCC, F_STORAGE, F_R,
        F_QUANT, F_GROUP, F_POW2, F_CAST, F_WLOAD, F_N
    };
    static const char *fields[F_N] = {"op",      "x",   "y",       "w",     "hidden", "vec",
                                      "tpr",     "rpc", "cluster", "occ",   "storage", "r",
                                      "quant",   "group", "pow2",  "cast", "wload"};
    char word[64];
    int seen[F_N] = {0};
    int i, n;

    memset(v, 0, sizeof *v);
    *seen_out = 0;
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
        if (f < 0 && (flags & NJ_VARIANT_SKIP_UNKNOWN))
            continue; /* a field of a later version */
        if (f < 0)
            return nj_fail(NORMJIT_EFORMAT, "unknown knob '%s'", word);
        if (seen[f]++)
            return nj_fail(NORMJIT_EFORMAT, "knob '%s' given twice", word);
        switch (f) {
        case F_OP:
            ok = (v->s.op = nj_op_parse(eq)) != 0;
            break;
        case F_X:
            ok = (v->s.tx = nj_dtype_parse(eq)) != 0;
            break;
        case F_Y:
            ok = (v->s.ty = nj_dtype_parse(eq)) != 0;
            break;
        case F_W:
            ok = (v->s.tw = nj_dtype_parse(eq)) != 0;
            break;
        case F_R:
            ok = (v->s.tr = nj_dtype_parse(eq)) != 0;
            break;
        case F_STORAGE:
            ok = (v->k.storage = name_index(storage_names, COUNT(storage_names), eq)) >= 0;
            break;
        case F_QUANT:
            ok = (v->s.quant = name_index(quant_names, COUNT(quant_names), eq)) >= 0;
            break;
        case F_CAST:
            ok = (v->s.cast = name_index(cast_names, COUNT(cast_names), eq)) >= 0;
            break;
        case F_WLOAD:
            ok = (v->k.wload = name_index(wload_names, COUNT(wload_names), eq)) >= 0;
            break;
        case F_HIDDEN:
            ok = parse_int(eq, 1, NJ_MAX_HIDDEN, &x);
            v->s.hidden = x;
            break;
        case F_OCC:
            ok = parse_int(eq, 0, 32, &x);
            v->k.occ = (int)x;
            break;
        case F_GROUP:
            ok = parse_int(eq, 0, 128, &x);
            v->s.group = (int)x;
            break;
        case F_POW2:
            ok = parse_int(eq, 0, 1, &x);
            v->s.pow2 = (int)x;
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
        if (seen[i])
            *seen_out |= 1u << i;
    return NORMJIT_OK;
}

int nj_variant_parse(const char *s, nj_variant *v)
{
    unsigned seen, i;
    static const char *const required[] = {"op",  "x",   "y",       "w",   "hidden", "vec",
                                           "tpr", "rpc", "cluster", "occ", "storage"};
    int status = nj_variant_parse_fields(s, v, 0, &seen);
    if (status != NORMJIT_OK)
        return status;
    for (i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!(seen & 1u << i))
            return nj_fail(NORMJIT_EFORMAT, "knob '%s' missing", required[i]);
    return NORMJIT_OK;
}

void nj_spec_epilogue_word(const nj_spec *s, char *out, size_t size)
{
    size_t used = 0;
    const char *sep = "";
    out[0] = '\0';
#define NJ_ADD_WORD_(...)                                                                   \
    do {                                                                                    \
        if (used < size) {                                                                  \
            int n_ = snprintf(out + used, size - used, __VA_ARGS__);                        \
            used += n_ > 0 ? (size_t)n_ : 0;                                                \
        }                                                                                   \
        sep = ",";                                                                          \
    } while (0)
    if (s->tr)
        NJ_ADD_WORD_("%sr=%s", sep, shown(nj_dtype_name(s->tr)));
    if (s->quant)
        NJ_ADD_WORD_("%sq=%s%.0d", sep, shown(nj_quant_name(s->quant)), s->group);
    if (s->pow2)
        NJ_ADD_WORD_("%sp2", sep);
    if (s->cast)
        NJ_ADD_WORD_("%sc=%s", sep, shown(nj_cast_name(s->cast)));
#undef NJ_ADD_WORD_
    if (!used)
        snprintf(out, size, "-");
}

int nj_spec_parse_epilogue_word(const char *word, nj_spec *s)
{
    char buf[96], *item, *save = NULL;
    s->tr = s->quant = s->group = s->pow2 = s->cast = 0;
    if (!strcmp(word, "-"))
        return 1;
    if (strlen(word) >= sizeof buf)
        return 0;
    strcpy(buf, word);
    for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (!strncmp(item, "r=", 2) && !s->tr) {
            if (!nj_dtype_is_float(s->tr = nj_dtype_parse(item + 2)))
                return 0;
        } else if (!strncmp(item, "q=", 2) && !s->quant) {
            const char *m = item + 2;
            if (!strcmp(m, "tensor"))
                s->quant = NORMJIT_QUANT_TENSOR;
            else if (!strcmp(m, "token"))
                s->quant = NORMJIT_QUANT_TOKEN;
            else if (!strcmp(m, "group64") || !strcmp(m, "group128")) {
                s->quant = NORMJIT_QUANT_GROUP;
                s->group = m[5] == '6' ? 64 : 128;
            } else
                return 0;
        } else if (!strcmp(item, "p2") && !s->pow2) {
            s->pow2 = 1;
        } else if (!strncmp(item, "c=", 2) && !s->cast) {
            int c = name_index(cast_names, COUNT(cast_names), item + 2);
            if (c <= 0)
                return 0;
            s->cast = c;
        } else {
            return 0;
        }
    }
    return 1;
}

static int is_pow2(int x)
{
    return x > 0 && (x & (x - 1)) == 0;
}

/* The epilogue fields: legal combinations with the op. */
static int check_spec(const nj_spec *s)
{
    const nj_op_desc *d = nj_op_desc_of(s->op);
    const int tin = nj_spec_input_dtype(s);
    if (!d || !nj_dtype_is_float(s->tx) || !nj_dtype_is_float(s->tw) || !nj_dtype_size(s->ty))
        return nj_fail(NORMJIT_EUNSUPPORTED, "unknown op or dtype in variant");
    if (((d->tensors & NJ_T_RES) != 0) != (s->tr != 0) || (s->tr && !nj_dtype_is_float(s->tr)))
        return nj_fail(NORMJIT_EUNSUPPORTED, "residual dtype %s does not fit op %s",
                       shown(nj_dtype_name(s->tr)), d->name);
    if (s->tw != tin && s->tw != NORMJIT_DTYPE_F32)
        return nj_fail(NORMJIT_EUNSUPPORTED, "weight dtype must be the input dtype or f32");
    if (s->quant < NORMJIT_QUANT_NONE || s->quant > NORMJIT_QUANT_GROUP ||
        (s->quant && !d->quant) || (s->quant != 0) != (nj_dtype_is_code(s->ty) != 0))
        return nj_fail(NORMJIT_EUNSUPPORTED, "quant %d with y %s does not fit op %s", s->quant,
                       shown(nj_dtype_name(s->ty)), d->name);
    if ((s->quant == NORMJIT_QUANT_GROUP) != (s->group != 0) ||
        (s->group && ((s->group != 64 && s->group != 128) || s->hidden % s->group)) ||
        (s->pow2 && s->quant != NORMJIT_QUANT_GROUP))
        return nj_fail(NORMJIT_EUNSUPPORTED, "group %d (pow2 %d) does not fit hidden %lld",
                       s->group, s->pow2, (long long)s->hidden);
    if (s->cast < NORMJIT_CAST_NONE || s->cast > NORMJIT_CAST_GEMMA)
        return nj_fail(NORMJIT_EUNSUPPORTED, "unknown cast %d", s->cast);
    return NORMJIT_OK;
}

/* Group quantization needs every group within the lanes of one step, or within the steps of one
   thread row of at most a warp (common.cuh). */
static int check_groups(const nj_variant *v)
{
    const nj_knobs *k = &v->k;
    const int gv = v->s.group / k->vec;
    const int64_t nv = v->s.hidden / k->vec, nvc = (nv + k->cluster - 1) / k->cluster;
    const int in_lanes = gv >= 1 && gv <= 32 && k->tpr % gv == 0;
    const int in_steps = gv > k->tpr && k->tpr <= 32 && gv % k->tpr == 0 && k->cluster == 1;
    if (v->s.quant != NORMJIT_QUANT_GROUP)
        return NORMJIT_OK;
    if ((!in_lanes && !in_steps) || nvc % gv || nv % k->cluster)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "group quantization of %d elements with vec=%d needs tpr (%d) to be a "
                       "multiple of %d vectors (at most 32) or a divisor of it up to 32, and "
                       "whole groups per CTA",
                       v->s.group, k->vec, k->tpr, gv);
    return NORMJIT_OK;
}

/* Staged storage copies whole vectors with cp.async (sm_80: 4, 8 or 16 bytes) into two
   buffers of dynamic shared memory, besides the reductions' static kilobyte or less. */
#define NJ_STATIC_SMEM_RESERVE 1024

static int copy_bytes_ok(int bytes)
{
    return bytes >= 4 && bytes <= 16;
}

int nj_variant_staged_fits(const nj_variant *v, int arch)
{
    return arch >= 80 && copy_bytes_ok(v->k.vec * nj_dtype_size(v->s.tx)) &&
           (!v->s.tr || copy_bytes_ok(v->k.vec * nj_dtype_size(v->s.tr))) &&
           nj_variant_stage_bytes(v) <= nj_arch_max_dynamic_smem(arch) - NJ_STATIC_SMEM_RESERVE;
}

static int check_staged(const nj_variant *v, int arch)
{
    const int xb = v->k.vec * nj_dtype_size(v->s.tx);
    const int rb = v->s.tr ? v->k.vec * nj_dtype_size(v->s.tr) : 4;
    const int limit = nj_arch_max_dynamic_smem(arch) - NJ_STATIC_SMEM_RESERVE;
    if (nj_variant_staged_fits(v, arch))
        return NORMJIT_OK;
    if (arch < 80)
        return nj_fail(NORMJIT_EUNSUPPORTED, "storage=staged needs sm_80 or newer (have sm_%d)",
                       arch);
    if (!copy_bytes_ok(xb) || !copy_bytes_ok(rb))
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "storage=staged copies 4 to 16 bytes per vector (vec=%d gives %d of x%s)",
                       v->k.vec, copy_bytes_ok(xb) ? rb : xb, copy_bytes_ok(xb) ? " (residual)" : "");
    if (nj_variant_stage_bytes(v) > limit)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "storage=staged needs %d bytes of shared memory per CTA (sm_%d allows %d)",
                       nj_variant_stage_bytes(v), arch, limit);
    return NORMJIT_OK;
}

int nj_variant_check(const nj_variant *v, int arch)
{
    const nj_knobs *k = &v->k;
    const int sx = nj_dtype_size(nj_spec_input_dtype(&v->s));
    int threads = k->tpr * k->rpc, status;

    if ((status = check_spec(&v->s)) != NORMJIT_OK)
        return status;
    if (v->s.hidden < 1 || v->s.hidden > NJ_MAX_HIDDEN)
        return nj_fail(NORMJIT_EUNSUPPORTED, "hidden size %lld outside 1..%d",
                       (long long)v->s.hidden, NJ_MAX_HIDDEN);
    if (!is_pow2(k->vec) || v->s.hidden % k->vec || k->vec * sx > NJ_MAX_ACCESS_BYTES)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "vec=%d must be a power of two dividing hidden (%lld) with at most %d "
                       "bytes of the input per access",
                       k->vec, (long long)v->s.hidden, NJ_MAX_ACCESS_BYTES);
    if (k->tpr < 1 || (k->tpr < 32 && !is_pow2(k->tpr)) || (k->tpr > 32 && k->tpr % 32))
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "tpr=%d must be a power of two up to 32 or a multiple of 32", k->tpr);
    if (k->rpc < 1 || threads > NJ_MAX_CTA_THREADS || threads % 32)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "tpr*rpc=%d threads per CTA must be a multiple of 32 up to %d", threads,
                       NJ_MAX_CTA_THREADS);
    if (k->storage != NJ_STORAGE_REG && k->storage != NJ_STORAGE_STREAM &&
        k->storage != NJ_STORAGE_STAGED)
        return nj_fail(NORMJIT_EUNSUPPORTED, "unknown storage %d", k->storage);
    if (k->wload != NJ_WLOAD_LATE &&
        (k->wload != NJ_WLOAD_EARLY || k->storage == NJ_STORAGE_STREAM))
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "wload=%d must be late (0), or early (1) with storage=reg or staged",
                       k->wload);
    if (k->occ < 0 || k->occ * threads > NJ_MAX_SM_THREADS)
        return nj_fail(NORMJIT_EUNSUPPORTED, "occ=%d CTAs of %d threads exceed an SM's %d threads",
                       k->occ, threads, NJ_MAX_SM_THREADS);
    if (k->cluster < 1 || k->cluster > NJ_MAX_CLUSTER)
        return nj_fail(NORMJIT_EUNSUPPORTED, "cluster=%d outside 1..%d", k->cluster,
                       NJ_MAX_CLUSTER);
    if (k->cluster > 1 && (arch < 90 || k->rpc != 1 || k->storage == NJ_STORAGE_STREAM))
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "cluster=%d needs sm_90 or newer (have sm_%d), rpc=1 and storage=reg "
                       "or staged",
                       k->cluster, arch);
    if (k->cluster > 1 && (v->s.hidden / k->vec) < k->cluster)
        return nj_fail(NORMJIT_EUNSUPPORTED, "cluster=%d exceeds the row's %lld vectors",
                       k->cluster, (long long)(v->s.hidden / k->vec));
    if (k->storage != NJ_STORAGE_STREAM &&
        nj_variant_vectors_per_thread(v) * k->vec * sx > NJ_MAX_THREAD_BYTES * 2)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "storage=%s would hold %d bytes per thread (at most %d): more threads, "
                       "a cluster or storage=stream",
                       storage_name(k->storage), nj_variant_vectors_per_thread(v) * k->vec * sx,
                       NJ_MAX_THREAD_BYTES * 2);
    if (k->storage == NJ_STORAGE_STAGED && (status = check_staged(v, arch)) != NORMJIT_OK)
        return status;
    return check_groups(v);
}

double nj_spec_bytes(const nj_spec *s, int64_t rows, int has_weight, int has_bias)
{
    const double elems = (double)rows * (double)s->hidden;
    double bytes = elems * (nj_dtype_size(s->tx) + nj_dtype_size(s->ty));
    if (s->tr)
        bytes += elems * 2 * nj_dtype_size(s->tr); /* residual read, sum written */
    bytes += (double)s->hidden * nj_dtype_size(s->tw) * ((has_weight ? 1 : 0) + (has_bias ? 1 : 0));
    if (s->quant == NORMJIT_QUANT_TOKEN)
        bytes += (double)rows * 4;
    else if (s->quant == NORMJIT_QUANT_GROUP)
        bytes += elems / s->group * 4;
    else if (s->quant == NORMJIT_QUANT_TENSOR)
        bytes += 4;
    return bytes;
}
