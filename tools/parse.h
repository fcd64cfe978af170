/* Parsers for the tool's arguments: pure functions, tested and fuzzed on their own. */
#ifndef NJ_TOOL_PARSE_H
#define NJ_TOOL_PARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * A comma-separated list of non-negative integers in [lo, hi] ("4096,8192").
 * Returns the count (at most max), or -1 with a message in err.
 */
int nj_parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t *out, int max, char *err,
                      size_t err_size);

/*
 * A comma-separated list of names, each mapped through `lookup` to a nonzero
 * value ("rmsnorm,layernorm"). Returns the count, or -1 with a message.
 */
int nj_parse_name_list(const char *s, int (*lookup)(const char *), const char *what, int *out,
                       int max, char *err, size_t err_size);

/* A size in bytes with an optional K, M, G or T suffix (powers of 1024): "512M". 0 on success. */
int nj_parse_size(const char *s, uint64_t *out, char *err, size_t err_size);

/* An architecture: "sm_90", "90" or "9.0"; "auto" gives 0. 0 on success. */
int nj_parse_arch(const char *s, int *out, char *err, size_t err_size);

/* A shape "BxSxH" (or "RxH"): rows = B*S, hidden = H. 0 on success. */
int nj_parse_shape(const char *s, int64_t *rows, int64_t *hidden, char *err, size_t err_size);

#endif
