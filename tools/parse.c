#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal integer at *s (no sign, no spaces), advancing *s. 0 on overflow or no digits. */
static int take_uint(const char **s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = *s;
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
        p++;
    }
    *s = p;
    *out = v;
    return 1;
}

int nj_parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t *out, int max, char *err,
                      size_t err_size)
{
    const char *list = s;
    int n = 0;
    if (!s || !*s) {
        snprintf(err, err_size, "empty list");
        return -1;
    }
    for (;;) {
        uint64_t v;
        const char *start = s;
        if (*s == ',' || !*s) {
            snprintf(err, err_size, "empty item in the list '%.40s'", list);
            return -1;
        }
        if (!take_uint(&s, &v) || (*s && *s != ',')) {
            snprintf(err, err_size, "'%.*s' is not a number", (int)strcspn(start, ","), start);
            return -1;
        }
        /* Inputs carry no sign: compare as signed only where lo or hi are negative. */
        if (hi < 0 || v > (uint64_t)hi || (lo > 0 && v < (uint64_t)lo)) {
            snprintf(err, err_size, "%llu is outside %lld..%lld", (unsigned long long)v,
                     (long long)lo, (long long)hi);
            return -1;
        }
        if (n == max) {
            snprintf(err, err_size, "more than %d values", max);
            return -1;
        }
        out[n++] = (int64_t)v;
        if (!*s)
            return n;
        s++; /* ',' */
    }
}

int nj_parse_name_list(const char *s, int (*lookup)(const char *), const char *what, int *out,
                       int max, char *err, size_t err_size)
{
    const char *list = s;
    char word[64];
    int n = 0;
    if (!s || !*s) {
        snprintf(err, err_size, "empty %s list", what);
        return -1;
    }
    for (;;) {
        size_t len = strcspn(s, ",");
        int v;
        if (len == 0) {
            snprintf(err, err_size, "empty item in the %s list '%.40s'", what, list);
            return -1;
        }
        if (len >= sizeof word) {
            snprintf(err, err_size, "bad %s '%.*s'", what, (int)(len > 32 ? 32 : len), s);
            return -1;
        }
        memcpy(word, s, len);
        word[len] = '\0';
        if (!(v = lookup(word))) {
            snprintf(err, err_size, "unknown %s '%s'", what, word);
            return -1;
        }
        if (n == max) {
            snprintf(err, err_size, "more than %d %s values", max, what);
            return -1;
        }
        out[n++] = v;
        s += len;
        if (!*s)
            return n;
        s++;
    }
}

int nj_parse_size(const char *s, uint64_t *out, char *err, size_t err_size)
{
    uint64_t v, mult = 1;
    const char *p = s;
    if (!s || !take_uint(&p, &v)) {
        snprintf(err, err_size, "'%s' is not a size (e.g. 512M, 2G)", s ? s : "");
        return -1;
    }
    switch (toupper((unsigned char)*p)) {
    case '\0':
    case 'B':
        break;
    case 'K':
        mult = 1ull << 10;
        break;
    case 'M':
        mult = 1ull << 20;
        break;
    case 'G':
        mult = 1ull << 30;
        break;
    case 'T':
        mult = 1ull << 40;
        break;
    default:
        snprintf(err, err_size, "'%s': unknown size suffix (use K, M, G or T)", s);
        return -1;
    }
    if (mult > 1) {
        p++;
        if (*p == 'i')
            p++;
    }
    if (*p == 'b') {
        snprintf(err, err_size, "'%s': 'b' means bits; sizes are in bytes (B)", s);
        return -1;
    }
    if (*p == 'B')
        p++;
    if (*p) {
        snprintf(err, err_size, "'%s' is not a size (e.g. 512M, 2G)", s);
        return -1;
    }
    if (v > UINT64_MAX / mult) {
        snprintf(err, err_size, "'%s' is too large", s);
        return -1;
    }
    *out = v * mult;
    return 0;
}

int nj_parse_arch(const char *s, int *out, char *err, size_t err_size)
{
    uint64_t major, minor = 0;
    const char *p = s;
    int prefixed = 0;
    if (s && !strcmp(s, "auto")) {
        *out = 0;
        return 0;
    }
    if (p && (!strncmp(p, "sm_", 3) || !strncmp(p, "compute_", 8))) {
        p = strchr(p, '_') + 1;
        prefixed = 1;
    }
    if (!p || !take_uint(&p, &major) || major > 999) {
        snprintf(err, err_size, "'%s' is not an architecture (e.g. sm_90, auto)", s ? s : "");
        return -1;
    }
    if (*p == '.') {
        /* A compute capability "9.0" has no prefix and one digit after the dot: "sm_90.0"
           is no architecture (it is not sm_900). */
        p++;
        if (prefixed || major > 99 || !take_uint(&p, &minor) || minor > 9) {
            snprintf(err, err_size,
                     "'%s' is not an architecture (e.g. sm_90, or 9.0 for compute capability "
                     "9.0)",
                     s);
            return -1;
        }
        major = major * 10 + minor;
    }
    if (*p || major < 10 || major > 999) {
        snprintf(err, err_size, "'%s' is not an architecture (e.g. sm_90, auto)", s);
        return -1;
    }
    *out = (int)major;
    return 0;
}

int nj_parse_arch_list(const char *s, int *out, int max, char *err, size_t err_size)
{
    const char *list = s;
    char word[32];
    int n = 0;
    if (!s || !*s) {
        snprintf(err, err_size, "empty list (e.g. sm_80,sm_90)");
        return -1;
    }
    for (;;) {
        size_t len = strcspn(s, ",");
        if (len == 0) {
            snprintf(err, err_size, "empty item in the list '%.40s'", list);
            return -1;
        }
        if (len >= sizeof word) {
            snprintf(err, err_size, "'%.*s...' is not an architecture", 16, s);
            return -1;
        }
        memcpy(word, s, len);
        word[len] = '\0';
        if (n == max) {
            snprintf(err, err_size, "more than %d architectures", max);
            return -1;
        }
        if (nj_parse_arch(word, &out[n], err, err_size))
            return -1;
        n++;
        s += len;
        if (!*s)
            return n;
        s++;
    }
}

void nj_parse_option_problem(int c, int optopt, const char *word, char *err, size_t err_size)
{
    char name[64];
    /* A long option is in argv ("--cache-dir", "--bogus=1"); a short one only in optopt (it
       may sit inside a group such as "-qz"). */
    if (word && !strncmp(word, "--", 2))
        snprintf(name, sizeof name, "%.*s", (int)strcspn(word, "="), word);
    else if (optopt > ' ' && optopt < 127)
        snprintf(name, sizeof name, "-%c", optopt);
    else
        snprintf(name, sizeof name, "%s", word ? word : "?");
    if (c == ':')
        snprintf(err, err_size, "option '%s' needs a value", name);
    else
        snprintf(err, err_size, "unknown option '%s'", name);
}

int nj_parse_shape(const char *s, int64_t *rows, int64_t *hidden, char *err, size_t err_size)
{
    uint64_t dims[3];
    int n = 0;
    const char *p = s;
    while (p && n < 3) {
        if (!take_uint(&p, &dims[n]) || dims[n] == 0 || dims[n] > (1ull << 40)) {
            p = NULL; /* a dimension that is missing, zero or too large */
            break;
        }
        n++;
        if (*p != 'x' || n == 3)
            break; /* a fourth 'x' stays unparsed and fails below */
        p++;
    }
    if (!p || *p || n < 2) {
        snprintf(err, err_size, "'%s' is not a shape BxSxH or RxH (e.g. 4x512x4096)", s ? s : "");
        return -1;
    }
    if (n == 3 && dims[0] > (1ull << 62) / dims[1]) {
        snprintf(err, err_size, "'%s': too many rows", s);
        return -1;
    }
    *hidden = (int64_t)dims[n - 1];
    *rows = (int64_t)(n == 3 ? dims[0] * dims[1] : dims[0]);
    return 0;
}
