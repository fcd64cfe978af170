// The public header included from C++ (built with -pedantic -Werror): the
// declarations have C linkage and the structs value-initialize.
#include "normjit.h"

#include <cstdio>
#include <cstring>

extern "C" void ignore_log(void *user, int level, const char *message)
{
    (void)user;
    (void)level;
    (void)message;
}

int main()
{
    normjit_norm_args args = normjit_norm_args();
    normjit_ctx_options options = normjit_ctx_options();
    normjit_log_fn log = ignore_log;
    normjit_status status;
    int failures = 0;

    args.struct_size = sizeof args;
    options.struct_size = sizeof options;
    options.log = log;
    status = static_cast<normjit_status>(normjit_layernorm_fwd(nullptr, &args, nullptr));
    if (status != NORMJIT_EINVAL || !std::strstr(normjit_last_error(), "ctx is NULL"))
        failures++;
    if (normjit_version() != NORMJIT_VERSION_HEX ||
        std::strcmp(normjit_status_name(NORMJIT_ECOMPILE), "NORMJIT_ECOMPILE") != 0)
        failures++;
    normjit_ctx_destroy(nullptr);
    std::printf("normjit.h as C++: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
