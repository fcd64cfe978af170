#include "hfconfig.h"

#include "files.h"
#include "json.h"
#include "normjit.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Model types whose norms are RMSNorms and whose config may not say (no rms_norm_eps). */
static const char *const rms_models[] = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe",
                                         "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3",
                                         "gemma3_text", "deepseek_v2", "deepseek_v3"};
/* Model types with per-head q_norm and k_norm over head_dim. */
static const char *const qk_models[] = {"qwen3", "qwen3_moe", "gemma3", "gemma3_text"};

static int listed(const char *const *names, size_t n, const char *s)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!strcmp(names[i], s))
            return 1;
    return 0;
}

/* A member of the text model's config: the root's, else text_config's (multimodal models). */
static const nj_json *field(const nj_json *root, const char *key)
{
    const nj_json *v = nj_json_get(root, key);
    return v ? v : nj_json_get(nj_json_get(root, "text_config"), key);
}

/* A positive integer field: 1 and *out, 0 when absent or null, -1 when not a positive integer. */
static int int_field(const nj_json *root, const char *key, int64_t *out)
{
    const nj_json *v = field(root, key);
    if (!v || v->type == NJ_JSON_NULL)
        return 0;
    if (v->type != NJ_JSON_NUMBER || v->number < 1 || v->number > (1 << 24) ||
        v->number != floor(v->number))
        return -1;
    *out = (int64_t)v->number;
    return 1;
}

static int add_norm(nj_model *m, int op, int64_t hidden, int cast)
{
    int i;
    for (i = 0; i < m->n_norms; i++)
        if (m->norms[i].op == op && m->norms[i].hidden == hidden)
            return 0;
    if (m->n_norms == NJ_MODEL_MAX_NORMS)
        return -1;
    m->norms[m->n_norms].op = op;
    m->norms[m->n_norms].hidden = hidden;
    m->norms[m->n_norms].cast = cast;
    m->n_norms++;
    return 0;
}

static int interpret(const nj_json *root, nj_model *m, const char *path, char *err,
                     size_t err_size)
{
    static const char *const ln_eps[] = {"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon",
                                         "layernorm_epsilon"};
    const nj_json *type = field(root, "model_type"), *dt = field(root, "dtype"), *eps;
    int64_t hidden, heads, head_dim, rank;
    int rms, cast, r, i;
    size_t k;

    memset(m, 0, sizeof *m);
    if (!root || root->type != NJ_JSON_OBJECT) {
        snprintf(err, err_size, "%s: not a JSON object", path);
        return -1;
    }
    /* A multimodal config names its text model in text_config. */
    if (nj_json_get(nj_json_get(root, "text_config"), "model_type") && !nj_json_get(root, "hidden_size"))
        type = nj_json_get(nj_json_get(root, "text_config"), "model_type");
    snprintf(m->model_type, sizeof m->model_type, "%s",
             type && type->type == NJ_JSON_STRING ? type->string : "");
    if ((r = int_field(root, "hidden_size", &hidden)) != 1) {
        snprintf(err, err_size, "%s: %s", path,
                 r ? "hidden_size is not a positive integer" : "no hidden_size");
        return -1;
    }
    if (!dt || dt->type == NJ_JSON_NULL)
        dt = field(root, "torch_dtype");
    if (dt && dt->type == NJ_JSON_STRING) {
        if (!strcmp(dt->string, "bfloat16"))
            m->dtype = NORMJIT_DTYPE_BF16;
        else if (!strcmp(dt->string, "float16"))
            m->dtype = NORMJIT_DTYPE_F16;
        else if (!strcmp(dt->string, "float32"))
            m->dtype = NORMJIT_DTYPE_F32;
        else {
            snprintf(err, err_size, "%s: dtype '%s' is not bfloat16, float16 or float32", path,
                     dt->string);
            return -1;
        }
    }
    /* The norm type: the eps field the model's code reads, else the model type. */
    eps = field(root, "rms_norm_eps");
    rms = eps != NULL;
    for (k = 0; !eps && k < sizeof ln_eps / sizeof ln_eps[0]; k++)
        eps = field(root, ln_eps[k]);
    if (!eps) {
        if (!listed(rms_models, sizeof rms_models / sizeof rms_models[0], m->model_type)) {
            snprintf(err, err_size,
                     "%s: cannot tell the norm (no rms_norm_eps or layer_norm_eps, and model "
                     "type '%s' is not one normjit knows)",
                     path, m->model_type);
            return -1;
        }
        rms = 1;
    }
    m->eps = eps && eps->type == NJ_JSON_NUMBER ? eps->number : 1e-6;
    cast = !rms ? NORMJIT_CAST_NONE
                : !strncmp(m->model_type, "gemma", 5) ? NORMJIT_CAST_GEMMA : NORMJIT_CAST_LLAMA;
    add_norm(m, rms ? NORMJIT_OP_RMSNORM : NORMJIT_OP_LAYERNORM, hidden, cast);
    add_norm(m, rms ? NORMJIT_OP_ADD_RMSNORM : NORMJIT_OP_ADD_LAYERNORM, hidden, cast);
    /* DeepSeek-style low-rank attention normalizes its compressed q and kv. */
    for (i = 0; i < 2; i++) {
        const char *key = i ? "kv_lora_rank" : "q_lora_rank";
        if ((r = int_field(root, key, &rank)) < 0) {
            snprintf(err, err_size, "%s: %s is not a positive integer", path, key);
            return -1;
        }
        if (r)
            add_norm(m, rms ? NORMJIT_OP_RMSNORM : NORMJIT_OP_LAYERNORM, rank, cast);
    }
    if (rms && listed(qk_models, sizeof qk_models / sizeof qk_models[0], m->model_type)) {
        if ((r = int_field(root, "head_dim", &head_dim)) < 0) {
            snprintf(err, err_size, "%s: head_dim is not a positive integer", path);
            return -1;
        }
        if (!r) {
            if (int_field(root, "num_attention_heads", &heads) != 1 || hidden % heads) {
                snprintf(err, err_size, "%s: no head_dim, and num_attention_heads does not "
                                        "divide hidden_size",
                         path);
                return -1;
            }
            head_dim = hidden / heads;
        }
        add_norm(m, NORMJIT_OP_QK_RMSNORM, head_dim, cast);
    }
    return 0;
}

int nj_model_read(const char *path, nj_model *m, char *err, size_t err_size)
{
    nj_buf text = {0};
    nj_file_error fe;
    nj_json *root = NULL;
    char why[256];
    int status;
    if (nj_file_read(AT_FDCWD, path, 0, 16u << 20, &text, &fe) != 0) {
        snprintf(err, err_size, "%s: %s", path, fe.text);
        return -1;
    }
    if (nj_json_parse(text.data ? text.data : "", text.len, &root, why, sizeof why) != 0) {
        snprintf(err, err_size, "%s: %s", path, why);
        nj_buf_free(&text);
        return -1;
    }
    status = interpret(root, m, path, err, err_size);
    nj_json_free(root);
    nj_buf_free(&text);
    return status;
}
