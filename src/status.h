/* Errors as values: the thread's last-error message and the library's logger. */
#ifndef NJ_STATUS_H
#define NJ_STATUS_H

#include "normjit.h"

#include <stdarg.h>

#if defined(__GNUC__)
#define NJ_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define NJ_PRINTF(fmt, args)
#endif

/* Record a detailed message for normjit_last_error() and return `status`. */
int nj_fail(int status, const char *fmt, ...) NJ_PRINTF(2, 3);

/* Prefix the current last-error message with more context ("while loading X: ..."). */
int nj_fail_prefix(int status, const char *fmt, ...) NJ_PRINTF(2, 3);

/* Where a context's messages go. */
typedef struct nj_logger {
    normjit_log_fn fn; /* NULL: stderr when to_stderr, else nowhere */
    void *user;
    int level;
    int to_stderr;
} nj_logger;

/* A logger from the options' callback and level, or from $NORMJIT_LOG. */
void nj_logger_init(nj_logger *lg, normjit_log_fn fn, void *user, int level);
void nj_log(const nj_logger *lg, int level, const char *fmt, ...) NJ_PRINTF(3, 4);

#endif
