#include "cache_admin.h"

#include "cache_entry.h"
#include "cache_key.h"
#include "cache_scan.h"
#include "disk_cache.h"
#include "files.h"
#include "hash.h"
#include "variant.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the key text ---- */

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* A run of 1..max decimal digits, whole: 1 and *out, else 0. */
static int parse_digits(const char *s, size_t len, size_t max, long long *out)
{
    long long v = 0;
    size_t i;
    if (len == 0 || len > max)
        return 0;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* Copy a name of [a-z0-9_] characters into out (NUL-terminated): 1, else 0 (empty, too long, odd). */
static int copy_name(const char *s, size_t len, char *out, size_t size)
{
    size_t i;
    if (len == 0 || len >= size)
        return 0;
    for (i = 0; i < len; i++)
        if (!is_name_char(s[i]))
            return 0;
    memcpy(out, s, len);
    out[len] = '\0';
    return 1;
}

static int starts_with(const char *s, size_t len, const char *prefix, size_t *plen)
{
    size_t n = strlen(prefix);
    *plen = n;
    return len >= n && !memcmp(s, prefix, n);
}

/*
 * The "variant:" line (nj_variant_describe's words), within [s, s+len): the
 * library's parser, tolerating fields of later versions; op, dtypes and
 * hidden must be there, the knobs are shown when they all are.
 */
static void parse_variant(const char *s, size_t len, nj_key_info *info)
{
    const unsigned required = NJ_VF_OP | NJ_VF_X | NJ_VF_Y | NJ_VF_W | NJ_VF_HIDDEN;
    char line[512], epi[96];
    nj_variant v;
    unsigned seen;
    if (len >= sizeof line || memchr(s, '\0', len))
        return;
    memcpy(line, s, len);
    line[len] = '\0';
    if (nj_variant_parse_fields(line, &v, NJ_VARIANT_SKIP_UNKNOWN, &seen) != NORMJIT_OK ||
        (seen & required) != required)
        return;
    info->has_variant = 1;
    snprintf(info->op, sizeof info->op, "%s", nj_op_name(v.s.op));
    snprintf(info->x, sizeof info->x, "%s", nj_dtype_name(v.s.tx));
    snprintf(info->y, sizeof info->y, "%s", nj_dtype_name(v.s.ty));
    snprintf(info->w, sizeof info->w, "%s", nj_dtype_name(v.s.tw));
    info->hidden = v.s.hidden;
    nj_spec_epilogue_word(&v.s, epi, sizeof epi);
    if ((seen & NJ_VF_KNOBS) == NJ_VF_KNOBS)
        snprintf(info->knobs, sizeof info->knobs, "v%d t%d r%d c%d o%d %s%s%s", v.k.vec,
                 v.k.tpr, v.k.rpc, v.k.cluster, v.k.occ,
                 nj_storage_name(v.k.storage), strcmp(epi, "-") ? " " : "",
                 strcmp(epi, "-") ? epi : "");
}

int nj_key_info_parse(const char *key, size_t len, nj_key_info *info)
{
    const char *p = key, *end = key + len;
    int have_variant = 0, have_target = 0, have_schema = 0;

    memset(info, 0, sizeof *info);
    strcpy(info->op, "?");
    strcpy(info->x, "?");
    strcpy(info->y, "?");
    strcpy(info->w, "?");
    strcpy(info->knobs, "?");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t line_len = nl ? (size_t)(nl - p) : (size_t)(end - p), plen;
        long long schema;
        if (!have_schema && starts_with(p, line_len, "schema: ", &plen)) {
            have_schema = 1;
            if (parse_digits(p + plen, line_len - plen, 6, &schema))
                info->schema = (int)schema;
        } else if (!have_target && starts_with(p, line_len, "target: ", &plen)) {
            have_target = 1;
            if (!copy_name(p + plen, line_len - plen, info->target, sizeof info->target))
                info->target[0] = '\0';
        } else if (!have_variant && starts_with(p, line_len, "variant: ", &plen)) {
            have_variant = 1;
            parse_variant(p + plen, line_len - plen, info);
        }
        p += line_len + (nl != NULL);
    }
    return info->has_variant;
}

/* ---- one file ---- */

/* Read exactly len bytes at offset; 1 on success. */
static int read_at(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 1;
}

static int set_problem(nj_admin_file *f, const char *problem, const char *fmt, ...)
    NJ_PRINTF(3, 4);

static int set_problem(nj_admin_file *f, const char *problem, const char *fmt, ...)
{
    f->state = NJ_ADMIN_CORRUPT;
    f->problem = problem;
    f->detail[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->detail, sizeof f->detail, fmt, ap);
        va_end(ap);
    }
    return f->state;
}

/* GONE: the entry was removed by someone else after the walk saw it. */
static int set_gone(nj_admin_file *f)
{
    f->state = NJ_ADMIN_GONE;
    f->problem = NULL;
    f->detail[0] = '\0';
    return f->state;
}

/*
 * Open an entry for reading as the library does (nj_file_open: no link
 * followed, no blocking, a regular file no larger than any entry) and check
 * that this user may trust it. Returns the fd, or -1 with f->state set
 * (CORRUPT with the problem, or GONE).
 */
static int open_entry(nj_admin_file *f)
{
    nj_file_error e;
    struct stat st;
    int fd;

    if (!S_ISREG(f->st.st_mode)) {
        set_problem(f, "not a regular file", "%s", nj_file_kind(f->st.st_mode));
        return -1;
    }
    fd = nj_file_open(AT_FDCWD, f->path, NJ_FILE_NOFOLLOW, NJ_ENTRY_MAX_FILE, &st, &e);
    if (fd < 0) {
        if (e.err == ENOENT)
            set_gone(f);
        else if (e.err == EFBIG)
            set_problem(f, nj_entry_problem(NJ_ENTRY_BAD_LENGTH), "%s", e.text);
        else if (e.err == 0)
            set_problem(f, "not a regular file", "%s", e.text);
        else {
            set_problem(f, "cannot be opened", "%s", e.text);
            f->unreadable = 1;
        }
        return -1;
    }
    f->st = st; /* the file actually checked: nj_admin_remove compares against it */
    if (!nj_disk_trusted(&st)) {
        close(fd);
        set_problem(f, "untrusted", "%s", nj_disk_untrusted(&st));
        return -1;
    }
    return fd;
}

/* Header, lengths and key checksum, reading only the header and the key. */
static void summarize(nj_admin_file *f)
{
    unsigned char raw[NJ_ENTRY_HEADER_SIZE];
    nj_entry_header h;
    uint64_t key_len, size;
    char *key;
    int fd = open_entry(f), result;

    if (fd < 0)
        return;
    size = (uint64_t)f->st.st_size;
    if (size < NJ_ENTRY_HEADER_SIZE || !read_at(fd, raw, sizeof raw, 0)) {
        close(fd);
        set_problem(f, nj_entry_problem(NJ_ENTRY_TRUNCATED), NULL);
        return;
    }
    result = nj_entry_read_header(raw, size, &h);
    key_len = h.key_len;
    if (result != NJ_ENTRY_OK) {
        close(fd);
        set_problem(f, nj_entry_problem(result), NULL);
        return;
    }
    key = malloc(key_len + 1);
    if (!key) {
        close(fd);
        set_problem(f, "cannot be read", "out of memory");
        return;
    }
    if (!read_at(fd, key, key_len, NJ_ENTRY_HEADER_SIZE)) {
        set_problem(f, nj_entry_problem(NJ_ENTRY_TRUNCATED), NULL);
    } else if (nj_checksum64(key, key_len) != h.key_sum) {
        set_problem(f, nj_entry_problem(NJ_ENTRY_BAD_KEY_SUM), NULL);
    } else {
        f->state = NJ_ADMIN_OK;
        nj_key_info_parse(key, key_len, &f->key);
    }
    free(key);
    close(fd);
}

int nj_admin_verify(nj_admin_file *f)
{
    nj_buf file = {0};
    nj_entry_view view;
    nj_file_error e;
    char digest[33];
    int fd, result;

    f->problem = NULL;
    f->detail[0] = '\0';
    f->unreadable = 0;
    if (f->state == NJ_ADMIN_TEMP || f->state == NJ_ADMIN_GONE)
        return f->state;
    if (f->schema != NJ_CACHE_SCHEMA) {
        f->state = NJ_ADMIN_STALE;
        return f->state;
    }
    if ((fd = open_entry(f)) < 0)
        return f->state;
    if (nj_file_read_fd(fd, NJ_ENTRY_MAX_FILE, &file, &e) != 0) {
        close(fd);
        nj_buf_free(&file);
        if (e.err == EFBIG)
            return set_problem(f, nj_entry_problem(NJ_ENTRY_BAD_LENGTH), "%s", e.text);
        set_problem(f, "cannot be read", "%s", e.text);
        f->unreadable = 1;
        return f->state;
    }
    close(fd);
    result = nj_entry_parse(file.data, file.len, NULL, 0, &view);
    if (result != NJ_ENTRY_OK) {
        nj_buf_free(&file);
        return set_problem(f, nj_entry_problem(result), NULL);
    }
    nj_key_info_parse(view.key, view.key_len, &f->key);
    nj_digest_hex(view.key, view.key_len, digest);
    nj_buf_free(&file);

    f->state = NJ_ADMIN_OK;
    if (!f->digest[0])
        return set_problem(f, "file name is not <digest>.njc", NULL);
    if (strcmp(digest, f->digest))
        return set_problem(f, "file name does not match the key's digest", "key digest %s",
                           digest);
    if (strncmp(f->bucket, digest, 2) || f->bucket[2])
        return set_problem(f, "in the wrong folder", "folder '%s', digest starts with %.2s",
                           f->bucket, digest);
    if (f->key.schema != NJ_CACHE_SCHEMA)
        return set_problem(f, "key names another schema", "schema %d in a v%d folder",
                           f->key.schema, f->schema);
    if (!f->key.target[0])
        return set_problem(f, "key names no target", NULL);
    if (strcmp(f->key.target, f->target))
        return set_problem(f, "in the wrong target folder", "key is for %s, folder is %s",
                           f->key.target, f->target);
    return f->state;
}

static int remove_failed(nj_admin_file *f, int err)
{
    f->remove_errno = errno = err;
    return -1;
}

int nj_admin_remove(nj_admin_file *f)
{
    struct stat st;
    if (f->removed)
        return 0;
    if (lstat(f->path, &st) != 0) {
        if (errno != ENOENT)
            return remove_failed(f, errno);
        f->removed = 1;
        return 0;
    }
    if (st.st_dev != f->st.st_dev || st.st_ino != f->st.st_ino)
        return remove_failed(f, EBUSY); /* replaced since it was looked at: not the file judged */
    /* A folder with an entry's name goes only when empty: what is in it is not known. */
    if ((S_ISDIR(st.st_mode) ? rmdir(f->path) : unlink(f->path)) != 0 && errno != ENOENT)
        return remove_failed(f, errno);
    f->removed = 1;
    return 0;
}

/* ---- the directory ---- */

int nj_admin_check_root(const char *root, int *exists, char *why, size_t why_size)
{
    struct stat lst;
    int r = nj_disk_root_check(root, why, why_size);
    *exists = r != NJ_ROOT_MISSING || lstat(root, &lst) == 0;
    if (r != NJ_ROOT_REFUSED)
        return 0;
    snprintf(why + strlen(why), why_size - strlen(why),
             "; the library does not use it and this command does not touch it (make it a "
             "directory of yours with mode 0700)");
    return -1;
}

/* The n-th path component from the end ("a/b/c", 1 -> "b") into out; "" when too long. */
static void component(const char *path, int from_end, char *out, size_t size)
{
    const char *end = path + strlen(path), *start;
    int i;
    for (i = 0; i <= from_end; i++) {
        start = end;
        while (start > path && start[-1] != '/')
            start--;
        if (i < from_end) {
            end = start > path ? start - 1 : start;
        } else {
            size_t len = (size_t)(end - start);
            if (len >= size)
                len = 0;
            memcpy(out, start, len);
            out[len] = '\0';
        }
    }
}

static int is_hex_digest(const char *s, size_t len)
{
    size_t i;
    if (len != 32)
        return 0;
    for (i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

struct collect {
    nj_admin_listing *l;
    int headers;
    int oom; /* a problem could not be recorded */
};

static int collect_one(const nj_cache_file *cf, void *user)
{
    struct collect *c = user;
    nj_admin_listing *l = c->l;
    nj_admin_file *f;
    const char *name = strrchr(cf->path, '/');
    size_t name_len;

    name = name ? name + 1 : cf->path;
    name_len = strlen(name);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        nj_admin_file *files = realloc(l->files, cap * sizeof *files);
        if (!files) {
            errno = ENOMEM;
            return -1;
        }
        l->files = files;
        l->cap = cap;
    }
    f = &l->files[l->n];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(cf->path))) {
        errno = ENOMEM;
        return -1;
    }
    l->n++;
    f->st = cf->st;
    f->schema = cf->schema;
    if (strlen(cf->target) < sizeof f->target)
        strcpy(f->target, cf->target);
    component(cf->path, 1, f->bucket, sizeof f->bucket);
    if (cf->is_temp) {
        f->state = NJ_ADMIN_TEMP;
        if (name_len > 32 && is_hex_digest(name, 32) && !strncmp(name + 32, ".njc.tmp.", 9))
            memcpy(f->digest, name, 32);
        return 0;
    }
    if (name_len == 36 && is_hex_digest(name, 32))
        memcpy(f->digest, name, 32);
    nj_key_info_parse("", 0, &f->key);
    if (f->schema != NJ_CACHE_SCHEMA)
        f->state = NJ_ADMIN_STALE;
    else if (c->headers)
        summarize(f);
    return 0;
}

static void collect_problem(const char *path, const char *why, void *user)
{
    struct collect *c = user;
    nj_admin_listing *l = c->l;
    nj_admin_problem *p;
    if (c->oom)
        return;
    if (l->n_problems == l->cap_problems) {
        size_t cap = l->cap_problems ? l->cap_problems * 2 : 8;
        nj_admin_problem *problems = realloc(l->problems, cap * sizeof *problems);
        if (!problems) {
            c->oom = 1;
            return;
        }
        l->problems = problems;
        l->cap_problems = cap;
    }
    p = &l->problems[l->n_problems];
    if (!(p->path = strdup(path))) {
        c->oom = 1;
        return;
    }
    snprintf(p->why, sizeof p->why, "%s", why);
    l->n_problems++;
}

void nj_admin_listing_free(nj_admin_listing *l)
{
    size_t i;
    for (i = 0; i < l->n; i++)
        free(l->files[i].path);
    for (i = 0; i < l->n_problems; i++)
        free(l->problems[i].path);
    free(l->files);
    free(l->problems);
    memset(l, 0, sizeof *l);
}

int nj_admin_collect(const char *root, int headers, nj_admin_listing *out)
{
    struct collect c = {out, headers, 0};
    int rc, saved;
    memset(out, 0, sizeof *out);
    rc = nj_cache_walk(root, collect_one, collect_problem, &c);
    if (rc == 0 && c.oom) {
        rc = -1;
        errno = ENOMEM;
    }
    if (rc != 0) {
        saved = errno;
        nj_admin_listing_free(out);
        errno = saved;
        return -1;
    }
    return 0;
}

/* Sort group: listed entries first, then corrupt, stale and temporary files. */
static int group(const nj_admin_file *f)
{
    switch (f->state) {
    case NJ_ADMIN_OK:
        return f->key.has_variant ? 0 : 1;
    case NJ_ADMIN_CORRUPT:
        return 2;
    case NJ_ADMIN_STALE:
        return 3;
    default:
        return 4;
    }
}

static int by_listing(const void *pa, const void *pb)
{
    const nj_admin_file *a = pa, *b = pb;
    int ga = group(a), gb = group(b), c;
    if (ga != gb)
        return ga < gb ? -1 : 1;
    if (ga == 0) {
        if ((c = strcmp(a->key.op, b->key.op)) || (c = strcmp(a->key.x, b->key.x)) ||
            (c = strcmp(a->key.y, b->key.y)) || (c = strcmp(a->key.w, b->key.w)))
            return c;
        if (a->key.hidden != b->key.hidden)
            return a->key.hidden < b->key.hidden ? -1 : 1;
        if ((c = strcmp(a->target, b->target)) || (c = strcmp(a->key.knobs, b->key.knobs)))
            return c;
    }
    return strcmp(a->path, b->path);
}

void nj_admin_sort(nj_admin_listing *l)
{
    if (l->n > 1)
        qsort(l->files, l->n, sizeof *l->files, by_listing);
}

size_t nj_admin_sweep(nj_admin_listing *l, time_t now, long max_age)
{
    size_t i, removed = 0;
    for (i = 0; i < l->n; i++) {
        nj_admin_file *f = &l->files[i];
        long long age;
        if (f->state != NJ_ADMIN_TEMP || f->removed)
            continue;
        age = (long long)now - (long long)f->st.st_mtim.tv_sec;
        if ((age > max_age || age < -max_age) && nj_admin_remove(f) == 0)
            removed++;
    }
    return removed;
}

struct use {
    int corrupt;
    struct timespec mtime;
    const char *path;
    size_t index;
};

/* Bytes a file holds as an entry: a FIFO or a folder with an entry's name holds none. */
static uint64_t entry_bytes(const nj_admin_file *f)
{
    return S_ISREG(f->st.st_mode) ? (uint64_t)f->st.st_size : 0;
}

static int counts_as_entry(const nj_admin_file *f)
{
    return f->state != NJ_ADMIN_TEMP && f->state != NJ_ADMIN_GONE && !f->removed;
}

static int by_use(const void *pa, const void *pb)
{
    const struct use *a = pa, *b = pb;
    if (a->corrupt != b->corrupt)
        return a->corrupt ? -1 : 1; /* corrupt entries are of no use: first to go */
    if (a->mtime.tv_sec != b->mtime.tv_sec)
        return a->mtime.tv_sec < b->mtime.tv_sec ? -1 : 1;
    if (a->mtime.tv_nsec != b->mtime.tv_nsec)
        return a->mtime.tv_nsec < b->mtime.tv_nsec ? -1 : 1;
    return strcmp(a->path, b->path);
}

size_t nj_admin_prune_plan(const nj_admin_listing *l, uint64_t max_bytes, size_t *order)
{
    struct use *use = malloc((l->n ? l->n : 1) * sizeof *use);
    size_t i, n = 0, k;
    uint64_t total = 0;
    if (!use)
        return 0;
    for (i = 0; i < l->n; i++) {
        const nj_admin_file *f = &l->files[i];
        if (!counts_as_entry(f))
            continue;
        use[n].corrupt = f->state == NJ_ADMIN_CORRUPT;
        use[n].mtime = f->st.st_mtim;
        use[n].path = f->path;
        use[n].index = i;
        n++;
        total += entry_bytes(f);
    }
    qsort(use, n, sizeof *use, by_use);
    for (k = 0; k < n && total > max_bytes; k++) {
        order[k] = use[k].index;
        total -= entry_bytes(&l->files[use[k].index]);
    }
    free(use);
    return k;
}

size_t nj_admin_entry_bytes(const nj_admin_listing *l, uint64_t *bytes)
{
    size_t i, n = 0;
    *bytes = 0;
    for (i = 0; i < l->n; i++) {
        const nj_admin_file *f = &l->files[i];
        if (!counts_as_entry(f))
            continue;
        n++;
        *bytes += entry_bytes(f);
    }
    return n;
}

/*
 * Remove the folders under `dir` that is_ours accepts and that are empty once
 * their own subfolders are gone (real folders only, no links followed).
 * Returns how many were removed.
 */
static size_t each_folder(const char *dir, int depth, int (*is_ours)(const char *name, int depth))
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t removed = 0;
    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!is_ours(de->d_name, depth))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
            continue;
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (depth < 2)
            removed += each_folder(path, depth + 1, is_ours);
        if (rmdir(path) == 0) /* only ever succeeds on an empty folder */
            removed++;
    }
    closedir(d);
    return removed;
}

/* Folders of the cache's layout: v<N>, then any target, then any bucket. */
static int cache_folder(const char *name, int depth)
{
    const char *p;
    if (depth > 0)
        return 1;
    if (name[0] != 'v' || !name[1])
        return 0;
    for (p = name + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

void nj_admin_clear(const char *root, nj_admin_listing *l, size_t *entries, size_t *temps,
                    size_t *folders)
{
    size_t i;
    *entries = *temps = 0;
    for (i = 0; i < l->n; i++) {
        nj_admin_file *f = &l->files[i];
        if (f->state == NJ_ADMIN_GONE)
            f->removed = 1; /* someone else's removal: not counted */
        if (f->removed || nj_admin_remove(f) != 0)
            continue;
        if (f->state == NJ_ADMIN_TEMP)
            (*temps)++;
        else
            (*entries)++;
    }
    *folders = each_folder(root, 0, cache_folder);
}

void nj_admin_human_size(uint64_t bytes, char *out, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = -1;
    if (bytes < 1024) {
        snprintf(out, size, "%llu B", (unsigned long long)bytes);
        return;
    }
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(out, size, "%.1f %s", v, units[u]);
}

void nj_admin_human_age(time_t mtime, time_t now, char *out, size_t size)
{
    long long age = (long long)now - (long long)mtime;
    if (age < 0)
        age = 0;
    if (age < 60)
        snprintf(out, size, "%llds", age);
    else if (age < 3600)
        snprintf(out, size, "%lldm", age / 60);
    else if (age < 86400)
        snprintf(out, size, "%lldh", age / 3600);
    else
        snprintf(out, size, "%lldd", age / 86400);
}
