#include "tuning.h"

#include "paths.h"
#include "files.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 1024
/* Far above any real table (a full one is a few hundred KiB); a larger file is refused whole. */
#define TUNING_MAX_BYTES (64u << 20)

nj_tuning *nj_tuning_new(const nj_device_key *device, const char *library,
                         const char *templates)
{
    nj_tuning *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (device)
        t->device = *device;
    snprintf(t->library, sizeof t->library, "%s", library ? library : "");
    snprintf(t->templates, sizeof t->templates, "%s", templates ? templates : "");
    return t;
}

void nj_tuning_free(nj_tuning *t)
{
    if (!t)
        return;
    free(t->records);
    free(t);
}

void nj_tuning_record_request(const nj_tuning_record *rec, nj_request *r)
{
    nj_request_of_variant(&rec->plan.v, rec->bucket, r);
}

static int same_config(const nj_tuning_record *a, const nj_tuning_record *b)
{
    nj_request x, y;
    nj_tuning_record_request(a, &x);
    nj_tuning_record_request(b, &y);
    return nj_request_same_config(&x, &y);
}

static int same_slot(const nj_tuning_record *a, const nj_tuning_record *b)
{
    return same_config(a, b) && a->bucket == b->bucket;
}

/* The array of *cap items of `size` bytes with room for item n (doubled, 64 at first), or NULL. */
static void *room_for(void *items, size_t n, size_t *cap, size_t size)
{
    size_t grown = *cap ? *cap * 2 : 64;
    void *p;
    if (n < *cap)
        return items;
    if ((p = realloc(items, grown * size)) != NULL)
        *cap = grown;
    return p;
}

static int append(nj_tuning *t, const nj_tuning_record *r)
{
    nj_tuning_record *p = room_for(t->records, t->n, &t->cap, sizeof *p);
    if (!p)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    t->records = p;
    t->records[t->n++] = *r;
    return NORMJIT_OK;
}

int nj_tuning_put(nj_tuning *t, const nj_tuning_record *r)
{
    size_t i;
    for (i = 0; i < t->n; i++)
        if (same_slot(&t->records[i], r)) {
            t->records[i] = *r;
            return NORMJIT_OK;
        }
    return append(t, r);
}

/*
 * The records of each configuration, found through a hash of it, so that
 * reading a table compares a record only with its own configuration's (at
 * most one a bucket), not with every other record: the shipped table's 180
 * records took 16 000 pairwise comparisons twice, most of a context's
 * creation. Groups are numbered in the order of their first record, which
 * never moves: nj_tuning_put's order, and the order the checks report in.
 */
typedef struct config_group {
    size_t first;              /* position of its first record */
    size_t slot[NJ_BUCKETS];   /* position + 1 of its record of each bucket, 0: none */
} config_group;

typedef struct config_index {
    size_t *table;        /* open addressing: group number + 1, 0: empty */
    size_t mask;          /* table size - 1, a power of two */
    config_group *groups;
    size_t n, cap;
} config_index;

static void index_free(config_index *ix)
{
    free(ix->table);
    free(ix->groups);
}

static size_t config_hash(const nj_tuning_record *r)
{
    nj_request q;
    nj_tuning_record_request(r, &q);
    q.bucket = 0;
    /* Only a spreading of nj_request_key: configurations are told apart by same_config. */
    return (size_t)((nj_request_key(&q) * 0x9e3779b97f4a7c15ull) >> 32);
}

/* The table entry for a record's configuration: its group + 1, or the empty one to fill. */
static size_t *index_find(const config_index *ix, const nj_tuning *t,
                          const nj_tuning_record *r)
{
    size_t h = config_hash(r) & ix->mask;
    while (ix->table[h] && !same_config(&t->records[ix->groups[ix->table[h] - 1].first], r))
        h = (h + 1) & ix->mask;
    return &ix->table[h];
}

/* Room for one more group with the table at most half full. */
static int index_reserve(config_index *ix, const nj_tuning *t)
{
    config_group *p = room_for(ix->groups, ix->n, &ix->cap, sizeof *p);
    size_t g;
    if (!p)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    ix->groups = p;
    if (2 * (ix->n + 1) > (ix->table ? ix->mask + 1 : 0)) {
        size_t size = ix->table ? 2 * (ix->mask + 1) : 128;
        config_index grown = *ix;
        if (!(grown.table = calloc(size, sizeof *grown.table)))
            return nj_fail(NORMJIT_ENOMEM, "out of memory");
        grown.mask = size - 1;
        for (g = 0; g < ix->n; g++)
            *index_find(&grown, t, &t->records[ix->groups[g].first]) = g + 1;
        free(ix->table);
        *ix = grown;
    }
    return NORMJIT_OK;
}

/* nj_tuning_put through the index. */
static int index_put(config_index *ix, nj_tuning *t, const nj_tuning_record *r)
{
    size_t *entry;
    config_group *g;
    int status;
    if ((status = index_reserve(ix, t)) != NORMJIT_OK)
        return status;
    entry = index_find(ix, t, r);
    if (*entry && ix->groups[*entry - 1].slot[r->bucket]) {
        t->records[ix->groups[*entry - 1].slot[r->bucket] - 1] = *r;
        return NORMJIT_OK;
    }
    if ((status = append(t, r)) != NORMJIT_OK)
        return status;
    if (!*entry) {
        g = &ix->groups[ix->n++];
        memset(g, 0, sizeof *g);
        g->first = t->n - 1;
        *entry = ix->n;
    }
    ix->groups[*entry - 1].slot[r->bucket] = t->n;
    return NORMJIT_OK;
}

/* Split a line into at most `max` words at spaces and tabs (modifies the line). */
static int split(char *line, char **words, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return n;
        if (n == max)
            return max + 1;
        words[n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
}

/* A decimal number of digits only, in [lo, hi]. (strtoll was a fifth of reading a table.) */
static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    long long v = 0;
    if (!isdigit((unsigned char)*s))
        return 0;
    for (; isdigit((unsigned char)*s); s++) {
        int d = *s - '0';
        if (v > hi / 10 || v * 10 > hi - d)
            return 0;
        v = v * 10 + d;
    }
    if (*s || v < lo)
        return 0;
    *out = v;
    return 1;
}

static int parse_bucket(const char *s)
{
    int b;
    for (b = 0; b < NJ_BUCKETS; b++)
        if (!strcmp(s, nj_bucket_name(b)))
            return b;
    return -1;
}

static int parse_record(char *line, nj_tuning_record *r, const char **why)
{
    char *w[16];
    long long v[8];
    char *end;
    int i, n;
    nj_variant *x = &r->plan.v;

    memset(r, 0, sizeof *r);
    n = split(line, w, 15);
    if (n != 14 && n != 15)
        return (*why = "expected 14 fields (" NJ_TUNING_FIELDS_V1 ") or 15 (and the epilogue)"), 0;
    x->s.op = nj_op_parse(w[0]);
    x->s.tx = nj_dtype_parse(w[1]);
    x->s.ty = nj_dtype_parse(w[2]);
    x->s.tw = nj_dtype_parse(w[3]);
    if (!x->s.op || !x->s.tx || !x->s.ty || !x->s.tw)
        return (*why = "unknown op or dtype"), 0;
    if (!parse_ll(w[4], 1, NJ_MAX_HIDDEN, &v[0]))
        return (*why = "bad hidden size"), 0;
    x->s.hidden = v[0];
    if ((r->bucket = parse_bucket(w[5])) < 0)
        return (*why = "bucket must be decode, prefill or large"), 0;
    for (i = 0; i < 4; i++)
        if (!parse_ll(w[6 + i], 1, NJ_MAX_CTA_THREADS, &v[1 + i]))
            return (*why = "bad vec, tpr, rpc or cluster"), 0;
    x->k.vec = (int)v[1];
    x->k.tpr = (int)v[2];
    x->k.rpc = (int)v[3];
    x->k.cluster = (int)v[4];
    if (!parse_ll(w[10], 0, 32, &v[6]))
        return (*why = "bad occ"), 0;
    x->k.occ = (int)v[6];
    for (x->k.storage = NJ_STORAGE_STAGED; x->k.storage >= 0; x->k.storage--)
        if (!strcmp(w[11], nj_storage_name(x->k.storage)))
            break;
    if (x->k.storage < 0)
        return (*why = "storage must be reg, stream or staged"), 0;
    if (!parse_ll(w[12], 0, 64, &v[5]))
        return (*why = "bad ctas_per_sm"), 0;
    r->plan.ctas_per_sm = (int)v[5];
    errno = 0;
    r->us = strtod(w[13], &end);
    if (*end || errno || !(r->us >= 0) || r->us > 1e12)
        return (*why = "bad time"), 0;
    if (n == 15 && !nj_spec_parse_epilogue_word(w[14], &x->s))
        return (*why = "bad epilogue (\"-\" or words like r=bf16,q=group128,p2,c=llama)"), 0;
    return 1;
}

/* "key: value" header lines. Returns 1 if the line was a header. */
static int parse_header(nj_tuning *t, const char *line, int *fields_seen, const char **why)
{
    static const char *keys[] = {"device", "sms",       "cc",     "memory-mib",
                                 "driver", "library", "templates", "fields"};
    const char *colon = strchr(line, ':'), *value;
    long long v;
    size_t k, klen;
    if (!colon)
        return 0;
    klen = (size_t)(colon - line);
    for (k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (strlen(keys[k]) == klen && !strncmp(line, keys[k], klen))
            break;
    if (k == sizeof keys / sizeof keys[0])
        return 0;
    value = colon + 1;
    while (*value == ' ')
        value++;
    *why = NULL;
    switch (k) {
    case 0:
        if (strlen(value) >= sizeof t->device.name)
            *why = "device name too long";
        else
            snprintf(t->device.name, sizeof t->device.name, "%s", value);
        break;
    case 1:
    case 2:
    case 3:
    case 4:
        /* memory-mib is a long long; the others are stored in an int */
        if (!parse_ll(value, 0, k == 3 ? 1ll << 40 : 0x7fffffffll, &v))
            *why = "bad number";
        else if (k == 1)
            t->device.sms = (int)v;
        else if (k == 2)
            t->device.cc = (int)v;
        else if (k == 3)
            t->device.memory_mib = v;
        else
            t->device.driver = (int)v;
        break;
    case 5:
        if (strlen(value) >= sizeof t->library)
            *why = "library version too long";
        else
            snprintf(t->library, sizeof t->library, "%s", value);
        break;
    case 6:
        if (strlen(value) >= sizeof t->templates)
            *why = "templates digest too long";
        else
            snprintf(t->templates, sizeof t->templates, "%s", value);
        break;
    default:
        if (strcmp(value, NJ_TUNING_FIELDS) && strcmp(value, NJ_TUNING_FIELDS_V1))
            *why = "unsupported fields line (expected \"" NJ_TUNING_FIELDS "\")";
        else
            *fields_seen = 1;
    }
    return 1;
}

/*
 * Batch invariance: the buckets of one configuration must share the knobs
 * that fix the reduction order. Of all the pairs of records that break it,
 * the one named is the first in the records' order (the earlier record,
 * then the later one): a group's first record against its first other
 * record with another layout, for the group that comes first.
 */
static int check_invariance(const nj_tuning *t, const config_index *ix)
{
    size_t g, b;
    for (g = 0; g < ix->n; g++) {
        const nj_tuning_record *a = &t->records[ix->groups[g].first], *other = NULL;
        for (b = 0; b < NJ_BUCKETS; b++) {
            const nj_tuning_record *c;
            if (!ix->groups[g].slot[b])
                continue;
            c = &t->records[ix->groups[g].slot[b] - 1];
            if (!nj_knobs_same_layout(&a->plan.v.k, &c->plan.v.k) && (!other || c < other))
                other = c;
        }
        if (other)
            return nj_fail(NORMJIT_EFORMAT,
                           "line %d: record for %s %s hidden %lld differs from line %d in "
                           "tpr, cluster or storage; a row's result would depend on the row "
                           "count",
                           other->line, nj_op_name(a->plan.v.s.op),
                           nj_dtype_name(a->plan.v.s.tx), (long long)a->plan.v.s.hidden,
                           a->line);
    }
    return NORMJIT_OK;
}

/*
 * Drop every record of a configuration that has an illegal one (knobs the
 * table's architecture cannot run), so that its buckets never mix this
 * table's layout with another source's.
 */
static void drop_illegal(nj_tuning *t, const config_index *ix)
{
    size_t i, b, kept = 0;
    char *bad = calloc(t->n ? t->n : 1, 1);
    if (!bad)
        return; /* lookups then meet an illegal record: nj_variant_check refuses it at build */
    for (i = 0; i < t->n; i++) {
        const config_group *g;
        if (nj_variant_check(&t->records[i].plan.v, t->device.cc) == NORMJIT_OK)
            continue;
        if (!t->dropped_why[0])
            snprintf(t->dropped_why, sizeof t->dropped_why, "line %d: %s", t->records[i].line,
                     normjit_last_error());
        g = &ix->groups[*index_find(ix, t, &t->records[i]) - 1];
        for (b = 0; b < NJ_BUCKETS; b++)
            if (g->slot[b])
                bad[g->slot[b] - 1] = 1;
    }
    for (i = 0; i < t->n; i++) {
        if (bad[i])
            t->dropped++;
        else
            t->records[kept++] = t->records[i];
    }
    t->n = kept;
    free(bad);
}

int nj_tuning_parse(const char *text, size_t len, nj_tuning **out)
{
    nj_tuning *t = nj_tuning_new(NULL, NULL, NULL);
    config_index ix = {0};
    size_t pos = 0;
    int line_no = 0, fields_seen = 0, status = NORMJIT_OK;

    *out = NULL;
    if (!t)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    while (pos < len && status == NORMJIT_OK) {
        char line[MAX_LINE];
        const char *nl = memchr(text + pos, '\n', len - pos), *why = NULL;
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        nj_tuning_record r;

        line_no++;
        if (n >= sizeof line) {
            status = nj_fail(NORMJIT_EFORMAT, "line %d: longer than %d bytes", line_no, MAX_LINE);
            break;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + (nl ? 1 : 0);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0'; /* CRLF files, trailing blanks */
        if (memchr(line, '\0', n) != NULL) {
            status = nj_fail(NORMJIT_EFORMAT, "line %d: contains a NUL byte", line_no);
            break;
        }
        if (!line[strspn(line, " \t")] || line[strspn(line, " \t")] == '#')
            continue;
        if (parse_header(t, line, &fields_seen, &why)) {
            if (why)
                status = nj_fail(NORMJIT_EFORMAT, "line %d: %s", line_no, why);
            continue;
        }
        if (!fields_seen) {
            status = nj_fail(NORMJIT_EFORMAT, "line %d: record before the 'fields:' line",
                             line_no);
            break;
        }
        if (!parse_record(line, &r, &why)) {
            status = nj_fail(NORMJIT_EFORMAT, "line %d: %s", line_no, why);
        } else {
            r.line = line_no;
            status = index_put(&ix, t, &r);
        }
    }
    if (status == NORMJIT_OK && (!t->device.name[0] || !fields_seen))
        status = nj_fail(NORMJIT_EFORMAT, "line %d: end of the table without a%s%s line",
                         line_no, t->device.name[0] ? "" : " 'device:'",
                         fields_seen ? "" : " 'fields:'");
    if (status == NORMJIT_OK)
        status = check_invariance(t, &ix);
    if (status == NORMJIT_OK)
        drop_illegal(t, &ix);
    index_free(&ix);
    if (status != NORMJIT_OK) {
        nj_tuning_free(t);
        return status;
    }
    *out = t;
    return NORMJIT_OK;
}

int nj_tuning_load(const char *path, nj_tuning **out)
{
    nj_buf b = {0};
    nj_file_error e;
    int status;
    *out = NULL;
    /* A link is followed: the path is the user's own choice (option or environment). */
    if (nj_file_read(AT_FDCWD, path, 0, TUNING_MAX_BYTES, &b, &e) != 0) {
        nj_buf_free(&b);
        return nj_file_fail(e.err == ENOMEM ? NORMJIT_ENOMEM : NORMJIT_EIO,
                            "cannot read tuning file", path, &e);
    }
    status = nj_tuning_parse(b.data, b.len, out);
    nj_buf_free(&b);
    if (status != NORMJIT_OK)
        nj_fail_prefix(status, "tuning file %s", path);
    return status;
}

static int record_order(const void *pa, const void *pb)
{
    const nj_tuning_record *a = pa, *b = pb;
    const nj_spec *x = &a->plan.v.s, *y = &b->plan.v.s;
    char ex[96], ey[96];
    int d;
    if ((d = x->op - y->op) || (d = x->tx - y->tx) || (d = x->ty - y->ty) || (d = x->tw - y->tw))
        return d;
    nj_spec_epilogue_word(x, ex, sizeof ex);
    nj_spec_epilogue_word(y, ey, sizeof ey);
    if ((d = strcmp(ex, ey)))
        return d;
    if (x->hidden != y->hidden)
        return x->hidden < y->hidden ? -1 : 1;
    if ((d = b->plan.v.k.vec - a->plan.v.k.vec))
        return d;
    return a->bucket - b->bucket;
}

int nj_tuning_write(const nj_tuning *t, FILE *f)
{
    nj_tuning_record *sorted = malloc((t->n ? t->n : 1) * sizeof *sorted);
    size_t i;
    if (!sorted)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    if (t->n) {
        memcpy(sorted, t->records, t->n * sizeof *sorted);
        qsort(sorted, t->n, sizeof *sorted, record_order);
    }
    fprintf(f,
            "# normjit tuning table, written by 'normjit tune'. One record per (op, dtypes,\n"
            "# epilogue, hidden size, vector width, row-count bucket); us is the median kernel\n"
            "# time.\n"
            "device: %s\nsms: %d\ncc: %d\nmemory-mib: %lld\ndriver: %d\nlibrary: %s\n"
            "templates: %s\nfields: %s\n",
            t->device.name, t->device.sms, t->device.cc, t->device.memory_mib, t->device.driver,
            t->library, t->templates, NJ_TUNING_FIELDS);
    for (i = 0; i < t->n; i++) {
        const nj_variant *v = &sorted[i].plan.v;
        char epi[96];
        nj_spec_epilogue_word(&v->s, epi, sizeof epi);
        fprintf(f, "%s %s %s %s %lld %s %d %d %d %d %d %s %d %.2f %s\n", nj_op_name(v->s.op),
                nj_dtype_name(v->s.tx), nj_dtype_name(v->s.ty), nj_dtype_name(v->s.tw),
                (long long)v->s.hidden, nj_bucket_name(sorted[i].bucket), v->k.vec, v->k.tpr,
                v->k.rpc, v->k.cluster, v->k.occ, nj_storage_name(v->k.storage),
                sorted[i].plan.ctas_per_sm, sorted[i].us, epi);
    }
    free(sorted);
    return ferror(f) ? nj_fail(NORMJIT_EIO, "cannot write tuning table") : NORMJIT_OK;
}

int nj_tuning_matches(const nj_tuning *t, const nj_device_key *d)
{
    return !strcmp(t->device.name, d->name) && t->device.sms == d->sms &&
           t->device.cc == d->cc && t->device.memory_mib == d->memory_mib;
}

int nj_tuning_lookup(const nj_tuning *t, const nj_request *r, nj_plan *out)
{
    /* The request's bucket, then the others, nearest first. */
    static const int order[NJ_BUCKETS][NJ_BUCKETS] = {
        {NJ_BUCKET_DECODE, NJ_BUCKET_PREFILL, NJ_BUCKET_LARGE},
        {NJ_BUCKET_PREFILL, NJ_BUCKET_DECODE, NJ_BUCKET_LARGE},
        {NJ_BUCKET_LARGE, NJ_BUCKET_PREFILL, NJ_BUCKET_DECODE}};
    int b;
    size_t i;
    if (r->bucket < 0 || r->bucket >= NJ_BUCKETS)
        return 0;
    for (b = 0; b < NJ_BUCKETS; b++)
        for (i = 0; i < t->n; i++) {
            const nj_tuning_record *rec = &t->records[i];
            nj_request have;
            nj_tuning_record_request(rec, &have);
            if (rec->bucket == order[r->bucket][b] && nj_request_same_config(&have, r)) {
                *out = rec->plan;
                return 1;
            }
        }
    return 0;
}

void nj_tuning_file_name(const nj_device_key *d, char *out, size_t size)
{
    size_t i, o = 0;
    int dash = 0;
    for (i = 0; d->name[i] && o + 16 < size; i++) {
        unsigned char c = (unsigned char)d->name[i];
        if (isalnum(c)) {
            out[o++] = (char)tolower(c);
            dash = 0;
        } else if (!dash && o > 0) {
            out[o++] = '-';
            dash = 1;
        }
    }
    if (o > 0 && out[o - 1] == '-')
        o--;
    snprintf(out + o, size - o, "-%dsm.tuning", d->sms);
}

int nj_tuning_default_path(const nj_device_key *device, char **out)
{
    char name[320], *dir;
    size_t size;
    int status;
    *out = NULL;
    if ((status = nj_user_path(NULL, "NORMJIT_TUNING_DIR", "XDG_CONFIG_HOME", "normjit/tuning",
                               ".config/normjit/tuning", &dir)) != NORMJIT_OK)
        return nj_fail_prefix(status, "tuning table");
    nj_tuning_file_name(device, name, sizeof name);
    size = strlen(dir) + strlen(name) + 2;
    if ((*out = malloc(size)) != NULL)
        snprintf(*out, size, "%s/%s", dir, name);
    free(dir);
    return *out ? NORMJIT_OK : nj_fail(NORMJIT_ENOMEM, "out of memory");
}

static pthread_once_t shipped_once = PTHREAD_ONCE_INIT;
static nj_tuning **shipped;
static int n_shipped;

static void parse_shipped(void)
{
    int i;
    shipped = calloc((size_t)nj_shipped_tuning_count + 1, sizeof *shipped);
    if (!shipped)
        return;
    for (i = 0; i < nj_shipped_tuning_count; i++)
        if (nj_tuning_parse(nj_shipped_tuning[i].text, nj_shipped_tuning[i].len,
                            &shipped[n_shipped]) == NORMJIT_OK)
            n_shipped++;
}

const nj_tuning *const *nj_shipped_tables(int *n)
{
    pthread_once(&shipped_once, parse_shipped);
    *n = n_shipped;
    return (const nj_tuning *const *)shipped;
}
