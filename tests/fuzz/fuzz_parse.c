/*
 * Fuzz target: the tool's argument parsers (tools/parse.c). The first byte
 * picks the parser ('i' int list, 'n' name list, 's' size, 'a' arch, 'h'
 * shape, 'l' arch list; any other byte modulo 6), the rest is the argument,
 * NUL-terminated.
 *
 * Each parser is compared with a reference written here from its contract
 * in tools/parse.h, in a different style (split first, then check each
 * piece), so an input accepted or read differently by the two is a finding,
 * as is any memory error or an error message that is not a string.
 */
#include "parse.h"

#include "fuzz_common.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 8

/* ---------------------------------------------------------------------- */
/* Reference implementations                                              */

/* A whole string of 1..20 decimal digits whose value fits 64 bits. */
static int ref_uint(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (len == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned d;
        if (!isdigit((unsigned char)s[i]))
            return 0;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* Split `s` at `sep`: pieces (start, length), or -1 if more than `max`. */
static int split(const char *s, char sep, const char **at, size_t *len, int max)
{
    int n = 0;
    for (;;) {
        const char *end = strchr(s, sep);
        size_t l = end ? (size_t)(end - s) : strlen(s);
        if (n == max)
            return -1;
        at[n] = s;
        len[n++] = l;
        if (!end)
            return n;
        s = end + 1;
    }
}

static int ref_int_list(const char *s, int64_t lo, int64_t hi, int64_t *out, int max)
{
    const char *at[MAX_ITEMS * 2];
    size_t len[MAX_ITEMS * 2];
    int n = split(s, ',', at, len, max), i;
    if (n < 1)
        return -1;
    for (i = 0; i < n; i++) {
        uint64_t v;
        if (!ref_uint(at[i], len[i], &v) || v > (uint64_t)INT64_MAX || (int64_t)v < lo ||
            (int64_t)v > hi)
            return -1;
        out[i] = (int64_t)v;
    }
    return n;
}

static const char *const names[] = {"rmsnorm", "layernorm", "f32", "f16", "bf16"};

static int lookup(const char *s)
{
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i]))
            return (int)i + 1;
    return 0;
}

static int ref_name_list(const char *s, int *out, int max)
{
    const char *at[MAX_ITEMS * 2];
    size_t len[MAX_ITEMS * 2];
    int n = split(s, ',', at, len, max), i;
    size_t k;
    if (n < 1)
        return -1;
    for (i = 0; i < n; i++) {
        out[i] = 0;
        for (k = 0; k < sizeof names / sizeof names[0]; k++)
            if (len[i] == strlen(names[k]) && !strncmp(at[i], names[k], len[i]))
                out[i] = (int)k + 1;
        if (!out[i])
            return -1;
    }
    return n;
}

/* Digits, then optionally K/M/G/T (any case) and optionally 'i', then optionally 'B'. */
static int ref_size(const char *s, uint64_t *out)
{
    static const char units[] = "KMGT";
    size_t digits = strspn(s, "0123456789");
    const char *p = s + digits, *unit;
    uint64_t v, mult = 1;
    if (!ref_uint(s, digits, &v))
        return -1;
    if (*p && (unit = strchr(units, toupper((unsigned char)*p))) != NULL) {
        mult = 1ull << (10 * (1 + (unit - units)));
        p++;
        if (*p == 'i')
            p++;
    }
    if (*p == 'B')
        p++;
    if (*p)
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* "auto"; or [sm_|compute_]N; or N.M (M a digit 0-9); the result N or 10N+M in 10..999. */
static int ref_arch(const char *s, int *out)
{
    const char *p = s, *dot;
    uint64_t major, minor;
    if (!strcmp(s, "auto")) {
        *out = 0;
        return 0;
    }
    if (!strncmp(p, "sm_", 3))
        p += 3;
    else if (!strncmp(p, "compute_", 8))
        p += 8;
    dot = strchr(p, '.');
    if (dot && p != s)
        return -1; /* "sm_90.0" */
    if (!ref_uint(p, dot ? (size_t)(dot - p) : strlen(p), &major))
        return -1;
    if (dot) {
        /* The number after the dot is a digit (leading zeros allowed). */
        if (!ref_uint(dot + 1, strlen(dot + 1), &minor) || minor > 9 || major > 99)
            return -1;
        major = major * 10 + minor;
    }
    if (major < 10 || major > 999)
        return -1;
    *out = (int)major;
    return 0;
}

static int ref_arch_list(const char *s, int *out, int max)
{
    const char *at[MAX_ITEMS * 2];
    size_t len[MAX_ITEMS * 2];
    int n = split(s, ',', at, len, max), i;
    if (n < 1)
        return -1;
    for (i = 0; i < n; i++) {
        char word[32];
        if (len[i] >= sizeof word)
            return -1;
        memcpy(word, at[i], len[i]);
        word[len[i]] = '\0';
        if (ref_arch(word, &out[i]))
            return -1;
    }
    return n;
}

/* RxH or BxSxH, each dimension 1..2^40, B*S at most 2^62. */
static int ref_shape(const char *s, int64_t *rows, int64_t *hidden)
{
    const char *at[3];
    size_t len[3];
    uint64_t d[3];
    int n = split(s, 'x', at, len, 3), i;
    if (n < 2)
        return -1;
    for (i = 0; i < n; i++)
        if (!ref_uint(at[i], len[i], &d[i]) || d[i] == 0 || d[i] > (1ull << 40))
            return -1;
    if (n == 3 && d[0] > (1ull << 62) / d[1])
        return -1;
    *hidden = (int64_t)d[n - 1];
    *rows = (int64_t)(n == 3 ? d[0] * d[1] : d[0]);
    return 0;
}


/* A failure leaves a message: a non-empty string within the buffer. */
static void check_err(const char *err, size_t size, int failed)
{
    if (failed)
        FUZZ_CHECK(memchr(err, '\0', size) != NULL && err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[48]; /* short, so long messages are cut */
    char *s;
    int which;

    if (size == 0)
        return 0;
    switch (data[0]) {
    case 'i':
        which = 0;
        break;
    case 'n':
        which = 1;
        break;
    case 's':
        which = 2;
        break;
    case 'a':
        which = 3;
        break;
    case 'h':
        which = 4;
        break;
    case 'l':
        which = 5;
        break;
    default:
        which = data[0] % 6;
    }
    s = malloc(size);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    memset(err, 0x55, sizeof err);

    switch (which) {
    case 0: {
        /* The tool's hidden-size range, and the widest range the types allow. */
        static const int64_t ranges[][2] = {{1, 1 << 24}, {0, INT64_MAX}};
        size_t k;
        for (k = 0; k < 2; k++) {
            int64_t out[MAX_ITEMS], ref[MAX_ITEMS];
            int n = nj_parse_int_list(s, ranges[k][0], ranges[k][1], out, MAX_ITEMS, err,
                                      sizeof err);
            int m = ref_int_list(s, ranges[k][0], ranges[k][1], ref, MAX_ITEMS);
            check_err(err, sizeof err, n < 0);
            FUZZ_CHECK(n == m);
            FUZZ_CHECK(n < 0 || !memcmp(out, ref, (size_t)n * sizeof out[0]));
        }
        break;
    }
    case 1: {
        int out[MAX_ITEMS], ref[MAX_ITEMS];
        int n = nj_parse_name_list(s, lookup, "name", out, MAX_ITEMS, err, sizeof err);
        int m = ref_name_list(s, ref, MAX_ITEMS);
        check_err(err, sizeof err, n < 0);
        FUZZ_CHECK(n == m);
        FUZZ_CHECK(n < 0 || !memcmp(out, ref, (size_t)n * sizeof out[0]));
        break;
    }
    case 2: {
        uint64_t v = 0, ref = 0;
        int r = nj_parse_size(s, &v, err, sizeof err), m = ref_size(s, &ref);
        check_err(err, sizeof err, r != 0);
        FUZZ_CHECK(r == m);
        FUZZ_CHECK(r != 0 || v == ref);
        break;
    }
    case 3: {
        int v = -1, ref = -1;
        int r = nj_parse_arch(s, &v, err, sizeof err), m = ref_arch(s, &ref);
        check_err(err, sizeof err, r != 0);
        FUZZ_CHECK(r == m);
        FUZZ_CHECK(r != 0 || v == ref);
        break;
    }
    case 5: {
        int out[MAX_ITEMS], ref[MAX_ITEMS];
        int n = nj_parse_arch_list(s, out, MAX_ITEMS, err, sizeof err);
        int m = ref_arch_list(s, ref, MAX_ITEMS);
        check_err(err, sizeof err, n < 0);
        FUZZ_CHECK(n == m);
        FUZZ_CHECK(n < 0 || !memcmp(out, ref, (size_t)n * sizeof out[0]));
        break;
    }
    default: {
        int64_t rows = 0, hidden = 0, ref_rows = 0, ref_hidden = 0;
        int r = nj_parse_shape(s, &rows, &hidden, err, sizeof err);
        int m = ref_shape(s, &ref_rows, &ref_hidden);
        check_err(err, sizeof err, r != 0);
        FUZZ_CHECK(r == m);
        FUZZ_CHECK(r != 0 || (rows == ref_rows && hidden == ref_hidden));
        break;
    }
    }
    free(s);
    return 0;
}
