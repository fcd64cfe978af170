#include "status.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NJ_LAST_ERROR_MAX 4096

static _Thread_local char last_error[NJ_LAST_ERROR_MAX];

NORMJIT_API const char *normjit_strerror(int status)
{
    switch (status) {
#define NJ_CASE_(name, value, msg) \
    case NORMJIT_##name:           \
        return msg;
        NORMJIT_STATUS_MAP(NJ_CASE_)
#undef NJ_CASE_
    }
    return "unknown status";
}

NORMJIT_API const char *normjit_status_name(int status)
{
    switch (status) {
#define NJ_CASE_(name, value, msg) \
    case NORMJIT_##name:           \
        return "NORMJIT_" #name;
        NORMJIT_STATUS_MAP(NJ_CASE_)
#undef NJ_CASE_
    }
    return "NORMJIT_UNKNOWN";
}

NORMJIT_API const char *normjit_last_error(void)
{
    return last_error;
}

int nj_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

int nj_fail_prefix(int status, const char *fmt, ...)
{
    char old[NJ_LAST_ERROR_MAX];
    size_t n, rest;
    va_list ap;
    memcpy(old, last_error, sizeof old);
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    n = strlen(last_error);
    if (n + 3 < sizeof last_error) {
        /* "<prefix>: <old message>", cut to fit */
        memcpy(last_error + n, ": ", 2);
        rest = sizeof last_error - n - 3;
        n += 2;
        if (strlen(old) < rest)
            rest = strlen(old);
        memcpy(last_error + n, old, rest);
        last_error[n + rest] = '\0';
    }
    return status;
}

/* The values NORMJIT_LOG takes ("0" or empty: silent), and the level of each. */
static const struct {
    const char *name;
    int level;
} env_levels[] = {
    {"1", NORMJIT_LOG_WARN},      {"error", NORMJIT_LOG_ERROR}, {"warn", NORMJIT_LOG_WARN},
    {"warning", NORMJIT_LOG_WARN}, {"info", NORMJIT_LOG_INFO},   {"debug", NORMJIT_LOG_DEBUG},
};

static atomic_flag warned_bad_env = ATOMIC_FLAG_INIT;

static int level_from_env(const char *s)
{
    size_t i;
    for (i = 0; i < sizeof env_levels / sizeof env_levels[0]; i++)
        if (!strcasecmp(s, env_levels[i].name))
            return env_levels[i].level;
    /* The user asked for messages: give warnings, and say once per process what was meant. */
    if (!atomic_flag_test_and_set(&warned_bad_env)) {
        char names[128] = "0";
        for (i = 0; i < sizeof env_levels / sizeof env_levels[0]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), ", %s",
                     env_levels[i].name);
        fprintf(stderr, "normjit: warning: NORMJIT_LOG=%.64s is not one of %s; printing warnings\n",
                s, names);
    }
    return NORMJIT_LOG_WARN;
}

void nj_logger_init(nj_logger *lg, normjit_log_fn fn, void *user, int level)
{
    const char *env = getenv("NORMJIT_LOG");
    lg->fn = fn;
    lg->user = user;
    lg->level = level;
    lg->to_stderr = 0;
    if (!fn && env && *env && strcmp(env, "0") != 0) {
        lg->to_stderr = 1;
        lg->level = level_from_env(env);
    }
}

void nj_log(const nj_logger *lg, int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "error", "warning", "info", "debug"};
    char msg[2048];
    va_list ap;
    if (!lg || level > lg->level || (!lg->fn && !lg->to_stderr))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lg->fn)
        lg->fn(lg->user, level, msg);
    else
        fprintf(stderr, "normjit: %s: %s\n", names[level < 0 ? 0 : level > 4 ? 4 : level], msg);
}
