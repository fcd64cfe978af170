/*
 * Built against an installed normjit through find_package(normjit): the
 * header, the library that is loaded and the CMake package agree on the
 * version, and a compile-only context can be created (no GPU needed).
 */
#include <normjit.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    normjit_ctx_options options;
    normjit_ctx *ctx = NULL;
    const char *loaded = normjit_version_string();
    int status;

    printf("header %s, library %s, CMake package %s\n", NORMJIT_VERSION_STRING, loaded,
           PACKAGE_VERSION);
    if (strcmp(loaded, NORMJIT_VERSION_STRING) != 0 || strcmp(loaded, PACKAGE_VERSION) != 0) {
        fprintf(stderr, "version mismatch\n");
        return 1;
    }

    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.flags = NORMJIT_CTX_NO_DISK_CACHE;
    options.offline_arch = 90;
    status = normjit_ctx_create(&ctx, &options);
    if (status != NORMJIT_OK) {
        fprintf(stderr, "normjit_ctx_create: %s: %s\n", normjit_status_name(status),
                normjit_last_error());
        return 1;
    }
    normjit_ctx_destroy(ctx);
    printf("compile-only context for sm_90: ok\n");
    return 0;
}
