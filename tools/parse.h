/* Parsers for the tool's arguments: pure functions, tested and fuzzed on their own. */
#ifndef NJ_TOOL_PARSE_H
#define NJ_TOOL_PARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * A comma-separated list of non-negative integers in [lo, hi] ("4096,8192").
 * Returns the count (at most max), or -1 with a message in err ("empty item
 * in the list" for "4096," or ",").
 */
int nj_parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t *out, int max, char *err,
                      size_t err_size);

/*
 * A comma-separated list of names, each mapped through `lookup` to a nonzero
 * value ("rmsnorm,layernorm"). Returns the count, or -1 with a message.
 */
int nj_parse_name_list(const char *s, int (*lookup)(const char *), const char *what, int *out,
                       int max, char *err, size_t err_size);

/*
 * A size in bytes: digits, then optionally K, M, G or T (any case; powers of
 * 1024), then optionally 'i', then optionally 'B' ("512", "512B", "512M",
 * "2GiB"). A lowercase 'b' (bits) is refused. 0 on success.
 */
int nj_parse_size(const char *s, uint64_t *out, char *err, size_t err_size);

/*
 * An architecture: "sm_90", "compute_90", "90", or a compute capability
 * "9.0" (no prefix, one digit after the dot); "auto" gives 0. The result is
 * in 10..999. 0 on success.
 */
int nj_parse_arch(const char *s, int *out, char *err, size_t err_size);

/* A comma-separated list of architectures ("sm_80,sm_90", "auto"). Returns the count, or -1. */
int nj_parse_arch_list(const char *s, int *out, int max, char *err, size_t err_size);

/*
 * The message for getopt_long's answer `c` when the option string starts
 * with ':' (and opterr is 0): ':' a missing value ("option '--cache-dir'
 * needs a value"), '?' an unknown option ("unknown option '--bogus'").
 * `word` is argv[optind - 1] and `optopt` getopt's, both as getopt left them.
 */
void nj_parse_option_problem(int c, int optopt, const char *word, char *err, size_t err_size);

/* A shape "BxSxH" (or "RxH"): rows = B*S, hidden = H. 0 on success. */
int nj_parse_shape(const char *s, int64_t *rows, int64_t *hidden, char *err, size_t err_size);

#endif
