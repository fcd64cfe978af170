/*
 * The public header as a C99 user sees it: this file is built with
 * -std=c99 -pedantic -Werror and links only the shared library, through the
 * exported normjit_* functions. It needs no GPU.
 */
#include "normjit.h"

#include <stdio.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "FAILED: %s (last error: %s)\n", what, normjit_last_error());
        failures++;
    }
}

int main(void)
{
    normjit_norm_args args;
    normjit_prepare_args prep;
    normjit_prepare_stats stats = {sizeof stats, 0, 0, 0, 0};
    normjit_ctx_options options;
    normjit_ctx *ctx = NULL;
    int64_t hidden = 4096;

    memset(&args, 0, sizeof args);
    args.struct_size = sizeof args;
    memset(&prep, 0, sizeof prep);
    prep.struct_size = sizeof prep;

    check(normjit_version() == NORMJIT_VERSION_HEX, "normjit_version");
    check(strcmp(normjit_version_string(), NORMJIT_VERSION_STRING) == 0, "normjit_version_string");
    check(strcmp(normjit_status_name(NORMJIT_EINVAL), "NORMJIT_EINVAL") == 0, "status name");
    check(strcmp(normjit_strerror(NORMJIT_OK), "success") == 0, "strerror");
    check(normjit_rmsnorm_fwd(NULL, &args, NULL) == NORMJIT_EINVAL, "rmsnorm without ctx");
    check(strstr(normjit_last_error(), "ctx is NULL") != NULL, "last error names the ctx");
    check(normjit_layernorm_fwd(NULL, &args, NULL) == NORMJIT_EINVAL, "layernorm without ctx");
    check(normjit_prepare(NULL, &prep, &stats) == NORMJIT_EINVAL, "prepare without ctx");
    check(normjit_ctx_cache_dir(NULL) == NULL, "cache dir of NULL");
    normjit_ctx_destroy(NULL);

    /* A compile-only context needs neither a GPU nor NVRTC until something compiles. */
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.flags = NORMJIT_CTX_NO_DISK_CACHE;
    options.offline_arch = 90;
    options.log_level = NORMJIT_LOG_WARN;
    check(normjit_ctx_create(&ctx, &options) == NORMJIT_OK && ctx != NULL, "offline context");
    args.rows = 0;
    args.hidden = hidden;
    args.x_dtype = args.y_dtype = NORMJIT_DTYPE_F16;
    check(normjit_rmsnorm_fwd(ctx, &args, NULL) == NORMJIT_OK, "zero rows");
    prep.op = NORMJIT_OP_RMSNORM;
    prep.x_dtype = prep.y_dtype = NORMJIT_DTYPE_BF16;
    prep.hidden = &hidden;
    prep.n_hidden = 0;
    check(normjit_prepare(ctx, &prep, &stats) == NORMJIT_OK && stats.compiled == 0,
          "prepare nothing");
    normjit_ctx_destroy(ctx);

    if (!failures)
        printf("normjit.h as C99: ok\n");
    return failures ? 1 : 0;
}
