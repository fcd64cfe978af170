/*
 * Fuzz target: the tuning-table parser, nj_tuning_parse (src/tuning.c).
 *
 * Besides memory safety and leaks (the result is always freed), the
 * properties: a failure returns NORMJIT_EFORMAT (or ENOMEM), no table and a
 * message; an accepted table has a device name and only records whose
 * fields are in range; and writing it with nj_tuning_write and parsing that
 * again gives the same table (times to the two decimals written).
 */
#include "tuning.h"

#include "fuzz_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int same_record(const nj_tuning_record *a, const nj_tuning_record *b)
{
    const nj_variant *x = &a->plan.v, *y = &b->plan.v;
    return nj_spec_equal(&x->s, &y->s) && x->k.vec == y->k.vec && x->k.tpr == y->k.tpr &&
           x->k.rpc == y->k.rpc && x->k.cluster == y->k.cluster &&
           x->k.storage == y->k.storage && x->k.occ == y->k.occ &&
           a->plan.ctas_per_sm == b->plan.ctas_per_sm && a->bucket == b->bucket &&
           fabs(a->us - b->us) <= 0.0051 + 1e-9 * fabs(a->us);
}

static void check_table(const nj_tuning *t)
{
    size_t i;
    FUZZ_CHECK(t->device.name[0] != '\0');
    FUZZ_CHECK(memchr(t->device.name, '\0', sizeof t->device.name) != NULL);
    FUZZ_CHECK(memchr(t->library, '\0', sizeof t->library) != NULL);
    FUZZ_CHECK(memchr(t->templates, '\0', sizeof t->templates) != NULL);
    FUZZ_CHECK(t->n <= t->cap);
    for (i = 0; i < t->n; i++) {
        const nj_tuning_record *r = &t->records[i];
        const nj_variant *v = &r->plan.v;
        FUZZ_CHECK(nj_op_name(v->s.op) != NULL);
        FUZZ_CHECK(nj_dtype_name(v->s.tx) && nj_dtype_name(v->s.ty) && nj_dtype_name(v->s.tw));
        FUZZ_CHECK(v->s.hidden >= 1 && v->s.hidden <= NJ_MAX_HIDDEN);
        FUZZ_CHECK(r->bucket >= 0 && r->bucket < NJ_BUCKETS);
        FUZZ_CHECK(v->k.vec >= 1 && v->k.tpr >= 1 && v->k.rpc >= 1 && v->k.cluster >= 1);
        FUZZ_CHECK(v->k.storage == NJ_STORAGE_REG || v->k.storage == NJ_STORAGE_STREAM ||
                   v->k.storage == NJ_STORAGE_STAGED);
        FUZZ_CHECK(r->us >= 0 && r->us <= 1e12);
    }
}

/*
 * The numbers of the accepted table are those its header lines say (the
 * last line of each key wins): a value the field cannot hold must not be
 * accepted as another.
 */
static void check_header_numbers(const char *text, size_t len, const nj_tuning *t)
{
    static const char *const keys[] = {"sms:", "cc:", "memory-mib:", "driver:"};
    long long said[4] = {0, 0, 0, 0};
    int seen[4] = {0, 0, 0, 0}, k;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        for (k = 0; k < 4; k++) {
            size_t kl = strlen(keys[k]);
            if (n > kl && n < 1024 && !memcmp(text + pos, keys[k], kl)) {
                char value[1024];
                memcpy(value, text + pos + kl, n - kl);
                value[n - kl] = '\0';
                said[k] = strtoll(value, NULL, 10);
                seen[k] = 1;
            }
        }
        pos += n + 1;
    }
    for (k = 0; k < 4; k++) {
        long long got = k == 0 ? t->device.sms : k == 1 ? t->device.cc
                                             : k == 2 ? t->device.memory_mib : t->device.driver;
        if (!seen[k])
            continue;
        if (got != said[k])
            fprintf(stderr, "header %s says %lld, the table holds %lld\n", keys[k], said[k], got);
        FUZZ_CHECK(got == said[k]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nj_tuning *t = (nj_tuning *)1, *t2 = NULL;
    char *text = NULL;
    size_t text_len = 0, i, j;
    FILE *f;
    int status;

    status = nj_tuning_parse((const char *)data, size, &t);
    if (status != NORMJIT_OK) {
        FUZZ_CHECK(status == NORMJIT_EFORMAT || status == NORMJIT_ENOMEM);
        FUZZ_CHECK(t == NULL);
        FUZZ_CHECK(normjit_last_error()[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(t != NULL);
    check_table(t);
    check_header_numbers((const char *)data, size, t);

    /* Round trip through the writer. */
    f = open_memstream(&text, &text_len);
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(nj_tuning_write(t, f) == NORMJIT_OK);
    FUZZ_CHECK(fclose(f) == 0);
    status = nj_tuning_parse(text, text_len, &t2);
    if (status != NORMJIT_OK)
        fprintf(stderr, "rewritten table rejected: %s\n%s", normjit_last_error(), text);
    FUZZ_CHECK(status == NORMJIT_OK);
    FUZZ_CHECK(!strcmp(t->device.name, t2->device.name));
    FUZZ_CHECK(t->device.sms == t2->device.sms && t->device.cc == t2->device.cc &&
               t->device.memory_mib == t2->device.memory_mib &&
               t->device.driver == t2->device.driver);
    FUZZ_CHECK(!strcmp(t->library, t2->library) && !strcmp(t->templates, t2->templates));
    FUZZ_CHECK(t->n == t2->n);
    for (i = 0; i < t->n; i++) {
        int found = 0;
        for (j = 0; j < t2->n && !found; j++)
            found = same_record(&t->records[i], &t2->records[j]);
        FUZZ_CHECK(found);
    }
    nj_tuning_free(t);
    nj_tuning_free(t2);
    free(text);
    return 0;
}
