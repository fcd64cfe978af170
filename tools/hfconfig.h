/*
 * Which kernels a HuggingFace model calls, read from its config.json: the
 * norm over hidden_size (plain and with the residual add engines fuse into
 * it), the low-rank norms of DeepSeek-style attention (q_lora_rank,
 * kv_lora_rank), the per-head QK-norm of Qwen3 and Gemma 3 over head_dim,
 * with the cast mode the model's own code uses and its dtype.
 */
#ifndef NJ_HFCONFIG_H
#define NJ_HFCONFIG_H

#include <stddef.h>
#include <stdint.h>

#define NJ_MODEL_MAX_NORMS 8

typedef struct nj_model_norm {
    int op;         /* normjit_op */
    int64_t hidden; /* hidden size, or head_dim for QK-norm */
    int cast;       /* normjit_cast */
} nj_model_norm;

typedef struct nj_model {
    char model_type[64];
    int dtype; /* normjit_dtype from "dtype" or "torch_dtype"; 0 when the config has none */
    double eps;
    nj_model_norm norms[NJ_MODEL_MAX_NORMS];
    int n_norms;
} nj_model;

/*
 * Read `path` (a config.json, at most 16 MiB) into *m. 0, or -1 with the
 * reason (naming the path and the field) in `err`.
 */
int nj_model_read(const char *path, nj_model *m, char *err, size_t err_size);

#endif
