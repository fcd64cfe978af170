/*
 * Faults of the kernel cache directory, end to end: a context made with a
 * fake driver (tests/faults/fault_fakes.c) and the real NVRTC, its cache in a
 * temporary directory, its warnings captured. In every case the call must
 * succeed by compiling, the user must get exactly one warning for the fault
 * (a second call that meets the same fault gets none), and nothing but
 * NVRTC's own output for the kernel may ever reach cuModuleLoadData.
 *
 * Cases: no space left (injected write() failure, and a real 48 KiB tmpfs
 * where this process may mount one), a read-only directory (chmod, emulated
 * with injected EROFS when running as root, and a real read-only mount where
 * possible), a directory of another user, a directory writable by others,
 * truncated and bit-flipped entries, an entry of another schema, entry files
 * others could have written, a CUBIN the driver refuses, an entry in
 * another schema's folder; and prepare_stats.not_cached counting the kernels
 * that could not be stored.
 */
#include "cache_entry.h"
#include "cache_key.h"
#include "ctx.h"
#include "disk_cache.h"
#include "fault_fakes.h"
#include "render.h"
#include "templates.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define RMS NORMJIT_OP_RMSNORM
#define LN NORMJIT_OP_LAYERNORM
#define F16 NORMJIT_DTYPE_F16

/* Hidden sizes used by the cases: each is a different kernel. */
#define H1 1024
#define H2 2048
#define H3 3072

enum { BY_LAUNCH = 0, BY_PREPARE = 1 };

/* ------------------------------------------------------------------------ */
/* Process-wide state                                                        */

static const nj_nvrtc *real_nvrtc;
static nj_nvrtc counting_nvrtc; /* the real NVRTC, counting compiles */
static atomic_int nvrtc_compiles;
static nj_driver drv;

static nvrtcResult counting_compile(nvrtcProgram prog, int n, const char *const *options)
{
    atomic_fetch_add(&nvrtc_compiles, 1);
    return real_nvrtc->compile_program(prog, n, options);
}

/* What NVRTC makes of each kernel, compiled here once per process. */
#define MAX_EXPECTED 32
static struct expected {
    char name[NJ_KERNEL_NAME_MAX];
    nj_buf image;
} expected[MAX_EXPECTED];
static int n_expected;

/* ------------------------------------------------------------------------ */
/* Per-test fixture                                                          */

typedef struct fixture {
    char dir[64];           /* the test's temporary directory */
    char cache[128];        /* dir/cache: the context's cache directory */
    int mounted;            /* a tmpfs is mounted on cache */
    ff_log log;             /* the context under test's messages */
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    char tuning[PATH_MAX];
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/normjit-faults-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->cache, sizeof fx->cache, "%s/cache", fx->dir);
    /* No user tuning table of this machine may change the plans. */
    snprintf(tuning, sizeof tuning, "%s/tuning", fx->dir);
    setenv("NORMJIT_TUNING_DIR", tuning, 1);
    ff_driver_init(&drv);
    atomic_store(&ff_drv.record, 1);
    atomic_store(&nvrtc_compiles, 0);
    ff_log_init(&fx->log);
    *state = fx;
    return 0;
}

static int unlock_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_D || flag == FTW_DNR || flag == FTW_DP)
        chmod(path, 0700);
    if (st->st_uid != geteuid())
        if (lchown(path, geteuid(), getegid()) != 0)
            return 0;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (fx->mounted)
        umount2(fx->cache, MNT_DETACH);
    chmod(fx->dir, 0700);
    nftw(fx->dir, unlock_entry, 16, FTW_PHYS);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    ff_driver_clear_images();
    ff_log_destroy(&fx->log);
    free(fx);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Contexts and calls                                                        */

static normjit_ctx *make_ctx(fixture *fx, ff_log *log)
{
    normjit_ctx_options opt;
    normjit_ctx *ctx = NULL;
    int status;
    memset(&opt, 0, sizeof opt);
    opt.struct_size = sizeof opt;
    opt.cache_dir = fx->cache;
    opt.log_level = NORMJIT_LOG_INFO;
    opt.log = ff_log_fn;
    opt.log_user = log;
    status = nj_ctx_create_with(&ctx, &opt, &drv, &counting_nvrtc);
    if (status != NORMJIT_OK)
        fail_msg("nj_ctx_create_with: %s: %s", normjit_status_name(status),
                 normjit_last_error());
    assert_non_null(ctx->disk);
    return ctx;
}

/* The request a one-row launch of `hidden` f16 elements (16-byte aligned) makes. */
static void request_of(int op, int64_t hidden, int bucket, nj_request *r)
{
    memset(r, 0, sizeof *r);
    r->s.op = op;
    r->s.tx = r->s.ty = r->s.tw = F16;
    r->vec = 8;
    r->bucket = bucket;
    r->s.hidden = hidden;
}

static const struct expected *expected_by_name(const char *name)
{
    int i;
    for (i = 0; i < n_expected; i++)
        if (!strcmp(expected[i].name, name))
            return &expected[i];
    return NULL;
}

/* The source and name of the kernel `ctx` plans for (op, hidden) in `bucket`. */
static void render_bucket(normjit_ctx *ctx, int op, int64_t hidden, int bucket, nj_buf *src,
                          char name[NJ_KERNEL_NAME_MAX])
{
    const nj_templates *templates;
    nj_request r;
    nj_plan plan;
    assert_int_equal(nj_templates_get(&templates), NORMJIT_OK);
    request_of(op, hidden, bucket, &r);
    nj_planner_plan(&ctx->planner, &r, &plan);
    assert_int_equal(nj_render(templates, &plan.v, src, name), NORMJIT_OK);
}

/*
 * Compile, with the real NVRTC and without the library's cache, every kernel
 * `ctx` would use for (op, hidden) in any bucket; return the decode one's.
 */
static const struct expected *expect_kernel(normjit_ctx *ctx, int op, int64_t hidden)
{
    const struct expected *first = NULL;
    nj_target target;
    int bucket, status;

    assert_int_equal(nj_target_init(&target, real_nvrtc, ctx->arch), NORMJIT_OK);
    assert_true(target.cubin);
    for (bucket = 0; bucket < NJ_BUCKETS; bucket++) {
        char name[NJ_KERNEL_NAME_MAX];
        const struct expected *e;
        nj_buf src = {0};
        render_bucket(ctx, op, hidden, bucket, &src, name);
        if (!(e = expected_by_name(name))) {
            struct expected *n;
            assert_true(n_expected < MAX_EXPECTED);
            n = &expected[n_expected];
            snprintf(n->name, sizeof n->name, "%s", name);
            status = nj_compile(real_nvrtc, &target, src.data, name, &n->image);
            if (status != NORMJIT_OK)
                fail_msg("compiling %s: %s", name, normjit_last_error());
            assert_memory_equal(n->image.data, ELFMAG, SELFMAG);
            assert_int_equal(ff_elf_size(n->image.data), n->image.len);
            n_expected++;
            e = n;
        }
        if (!first)
            first = e;
        nj_buf_free(&src);
    }
    return first;
}

/* How many kernels `ctx` uses for (op, hidden) over all buckets (what a prepare loads): one,
   or more where a bucket's knobs differ (the decode bucket's weights read with the row). */
static int kernels_of(normjit_ctx *ctx, int op, int64_t hidden)
{
    char names[NJ_BUCKETS][NJ_KERNEL_NAME_MAX];
    int bucket, i, n = 0;
    for (bucket = 0; bucket < NJ_BUCKETS; bucket++) {
        nj_buf src = {0};
        render_bucket(ctx, op, hidden, bucket, &src, names[n]);
        nj_buf_free(&src);
        for (i = 0; i < n && strcmp(names[i], names[n]); i++)
            ;
        if (i == n)
            n++;
    }
    return n;
}

/* Ask `ctx` for the kernel of (op, hidden): a one-row launch, or normjit_prepare. */
static void ask(normjit_ctx *ctx, int how, int op, int64_t hidden)
{
    int status;
    expect_kernel(ctx, op, hidden);
    if (how == BY_LAUNCH) {
        normjit_norm_args a;
        memset(&a, 0, sizeof a);
        a.struct_size = sizeof a;
        a.rows = 1;
        a.hidden = hidden;
        /* Fake device pointers: 256-byte aligned, far apart. */
        a.x = (const void *)(uintptr_t)0x100000000ull;
        a.y = (void *)(uintptr_t)0x200000000ull;
        a.weight = (const void *)(uintptr_t)0x300000000ull;
        a.x_dtype = a.y_dtype = a.weight_dtype = F16;
        a.eps = 1e-5f;
        status = op == RMS ? normjit_rmsnorm_fwd(ctx, &a, NULL)
                           : normjit_layernorm_fwd(ctx, &a, NULL);
    } else {
        normjit_prepare_args p;
        memset(&p, 0, sizeof p);
        p.struct_size = sizeof p;
        p.op = op;
        p.x_dtype = p.y_dtype = p.weight_dtype = F16;
        p.hidden = &hidden;
        p.n_hidden = 1;
        status = normjit_prepare(ctx, &p, NULL);
    }
    if (status != NORMJIT_OK)
        fail_msg("%s of %s hidden %lld: %s: %s", how == BY_LAUNCH ? "launch" : "prepare",
                 nj_op_name(op), (long long)hidden, normjit_status_name(status),
                 normjit_last_error());
}

/*
 * Every image the driver was handed is an ELF file equal to what NVRTC makes
 * for a kernel of this test; one whose kernel was looked up is that kernel's.
 * Returns how many images there were and forgets them.
 */
static int check_images(void)
{
    static ff_image images[FF_MAX_IMAGES];
    int i, j, n, dropped;
    /* Take the records out first: a failure below must not leave the fake's lock held. */
    pthread_mutex_lock(&ff_drv.mu);
    n = ff_drv.n_images;
    dropped = ff_drv.images_dropped;
    memcpy(images, ff_drv.images, (size_t)n * sizeof images[0]);
    ff_drv.n_images = 0;
    ff_drv.images_dropped = 0;
    pthread_mutex_unlock(&ff_drv.mu);

    assert_int_equal(dropped, 0);
    for (i = 0; i < n; i++) {
        const ff_image *im = &images[i];
        const struct expected *e = NULL;
        if (!im->is_elf)
            fail_msg("image %d handed to cuModuleLoadData is not an ELF file (starts %02x %02x "
                     "%02x %02x)",
                     i, im->bytes[0], im->bytes[1], im->bytes[2], im->bytes[3]);
        if (im->name[0]) {
            if (!(e = expected_by_name(im->name)))
                fail_msg("image %d: kernel %s was never asked for", i, im->name);
        } else {
            /* A refused image: it must still be one of NVRTC's. */
            for (j = 0; j < n_expected && !e; j++)
                if (expected[j].image.len == im->len &&
                    !memcmp(expected[j].image.data, im->bytes, im->len))
                    e = &expected[j];
            if (!e)
                fail_msg("image %d (refused by the driver) is not any kernel NVRTC made", i);
        }
        if (e->image.len != im->len || memcmp(e->image.data, im->bytes, im->len))
            fail_msg("image %d for %s differs from NVRTC's output (%zu vs %zu bytes)", i,
                     e->name, im->len, e->image.len);
    }
    for (i = 0; i < n; i++)
        free(images[i].bytes);
    return n;
}

static void expect_warnings(ff_log *log, int n, const char *containing)
{
    int i, found = 0;
    if (ff_log_count(log, NORMJIT_LOG_WARN) != n || ff_log_count(log, NORMJIT_LOG_ERROR) != 0) {
        ff_log_dump(log, "captured");
        fail_msg("expected %d warning(s) and no error, got %d warning(s), %d error(s)", n,
                 ff_log_count(log, NORMJIT_LOG_WARN), ff_log_count(log, NORMJIT_LOG_ERROR));
    }
    if (!containing)
        return;
    for (i = 0; i < log->n; i++)
        if (log->levels[i] == NORMJIT_LOG_WARN && strstr(log->messages[i], containing))
            found = 1;
    if (!found) {
        ff_log_dump(log, "captured");
        fail_msg("no warning says \"%s\"", containing);
    }
}

static void expect_compiles(int n)
{
    int got = atomic_load(&nvrtc_compiles);
    if (got != n)
        fail_msg("expected %d NVRTC compile(s) so far, got %d", n, got);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

#define MAX_FILES 64
static char found_paths[MAX_FILES][PATH_MAX];
static int n_found;
static const char *found_suffix;

static int collect(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (flag == FTW_F && strstr(path, found_suffix) && n_found < MAX_FILES)
        snprintf(found_paths[n_found++], PATH_MAX, "%s", path);
    return 0;
}

/* Files under `dir` whose path contains `what` (".njc", ".tmp."). */
static int count_files(const char *dir, const char *what)
{
    n_found = 0;
    found_suffix = what;
    nftw(dir, collect, 16, FTW_PHYS);
    return n_found;
}

static void read_whole(const char *path, nj_buf *out)
{
    FILE *f = fopen(path, "rb");
    char chunk[4096];
    size_t n;
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    nj_buf_reset(out);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        nj_buf_append(out, chunk, n);
    assert_false(ferror(f));
    fclose(f);
    assert_false(out->oom);
}

/* Overwrite a file's bytes in place (its owner and mode stay). */
static void write_whole(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0)
        fail_msg("cannot open %s for writing: %s", path, strerror(errno));
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* The cache entry file of kernel `name` under `root`, found by the key text it holds. */
static void entry_path(const char *root, const char *name, char *out)
{
    nj_buf file = {0};
    int i, n = count_files(root, ".njc"), found = 0;
    for (i = 0; i < n; i++) {
        nj_entry_view v;
        read_whole(found_paths[i], &file);
        if (nj_entry_parse(file.data, file.len, NULL, 0, &v) == NJ_ENTRY_OK &&
            memmem(v.key, v.key_len, name, strlen(name))) {
            memcpy(out, found_paths[i], PATH_MAX);
            found++;
        }
    }
    nj_buf_free(&file);
    if (found != 1)
        fail_msg("%d valid cache entries for %s under %s", found, name, root);
}

/* The entry at `path` is valid and holds exactly NVRTC's image for its kernel. */
static void expect_valid_entry(const char *path, const struct expected *e)
{
    nj_buf file = {0};
    nj_entry_view v;
    int r;
    read_whole(path, &file);
    r = nj_entry_parse(file.data, file.len, NULL, 0, &v);
    if (r != NJ_ENTRY_OK)
        fail_msg("entry %s: %s", path, nj_entry_problem(r));
    assert_non_null(memmem(v.key, v.key_len, e->name, strlen(e->name)));
    assert_int_equal(v.payload_len, e->image.len);
    assert_memory_equal(v.payload, e->image.data, e->image.len);
    nj_buf_free(&file);
}

/*
 * Rewrite a valid entry as another valid entry whose image is NVRTC's with
 * one byte changed: if the library ever loaded it, check_images would see.
 */
static void poison_entry(const char *path)
{
    nj_buf file = {0}, out = {0};
    nj_entry_view v;
    unsigned char *payload;
    read_whole(path, &file);
    assert_int_equal(nj_entry_parse(file.data, file.len, NULL, 0, &v), NJ_ENTRY_OK);
    payload = malloc(v.payload_len);
    assert_non_null(payload);
    memcpy(payload, v.payload, v.payload_len);
    payload[v.payload_len / 2] ^= 0x40;
    assert_int_equal(nj_entry_encode(v.key, v.key_len, payload, v.payload_len, &out), NORMJIT_OK);
    write_whole(path, out.data, out.len);
    free(payload);
    nj_buf_free(&file);
    nj_buf_free(&out);
}

/*
 * Fill the cache with valid entries for (op, hidden[i]) through a first
 * context; return their paths. The first context must have no complaint.
 */
static void populate(fixture *fx, int op, const int64_t *hidden, int n, char paths[][PATH_MAX])
{
    ff_log log;
    normjit_ctx *ctx;
    int i, before = atomic_load(&nvrtc_compiles);
    ff_log_init(&log);
    ctx = make_ctx(fx, &log);
    for (i = 0; i < n; i++) {
        const struct expected *e = expect_kernel(ctx, op, hidden[i]);
        ask(ctx, BY_LAUNCH, op, hidden[i]);
        entry_path(fx->cache, e->name, paths[i]);
        expect_valid_entry(paths[i], e);
    }
    normjit_ctx_destroy(ctx);
    expect_warnings(&log, 0, NULL);
    ff_log_destroy(&log);
    assert_int_equal(check_images(), n);
    expect_compiles(before + n);
    /* Count from here on what the context under test does. */
    atomic_store(&nvrtc_compiles, 0);
    atomic_store(&ff_drv.module_loads, 0);
    atomic_store(&ff_drv.launches, 0);
}

static int try_mount_tmpfs(fixture *fx, const char *size)
{
    char opts[64];
    if (mkdir(fx->cache, 0700) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", fx->cache, strerror(errno));
    snprintf(opts, sizeof opts, "size=%s,mode=0700", size);
    if (mount("tmpfs", fx->cache, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
        print_message("skipped: cannot mount a tmpfs on %s (%s); this needs root or "
                      "CAP_SYS_ADMIN\n",
                      fx->cache, strerror(errno));
        return 0;
    }
    fx->mounted = 1;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Injected failures                                                         */

static size_t write_budget; /* bytes the injected write() still lets through */
static int injected_errno;

static ssize_t write_until_full(int fd, const void *data, size_t len)
{
    ssize_t n;
    if (write_budget == 0) {
        errno = injected_errno;
        return -1;
    }
    n = write(fd, data, len < write_budget ? len : write_budget);
    if (n > 0)
        write_budget -= (size_t)n;
    return n;
}

static int rename_fails(const char *from, const char *to)
{
    (void)from, (void)to;
    errno = injected_errno;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                     */

/* write() fails with ENOSPC after a partial first entry. */
static void test_no_space_injected(void **state)
{
    fixture *fx = *state;
    const nj_disk_io io = {write_until_full, fsync, rename};
    const struct expected *e;
    char path[PATH_MAX];
    ff_log log2;
    normjit_ctx *ctx = make_ctx(fx, &fx->log);
    const int rms2 = kernels_of(ctx, RMS, H2);

    write_budget = 1000;
    injected_errno = ENOSPC;
    nj_disk_cache_set_io(ctx->disk, &io);

    ask(ctx, BY_LAUNCH, RMS, H1);
    expect_compiles(1);
    expect_warnings(&fx->log, 1, "No space left on device");
    ask(ctx, BY_PREPARE, RMS, H2);
    expect_compiles(1 + rms2);
    expect_warnings(&fx->log, 1, NULL);
    ask(ctx, BY_LAUNCH, LN, H1);
    expect_compiles(2 + rms2);
    expect_warnings(&fx->log, 1, NULL);
    assert_int_equal(atomic_load(&ff_drv.launches), 2);
    normjit_ctx_destroy(ctx);
    assert_int_equal(check_images(), 2 + rms2);
    /* Nothing stored, no temporary file left behind. */
    assert_int_equal(count_files(fx->cache, ".njc"), 0);
    assert_int_equal(count_files(fx->cache, ".tmp."), 0);

    /* Once there is room again the next context stores normally. */
    ff_log_init(&log2);
    ctx = make_ctx(fx, &log2);
    e = expect_kernel(ctx, RMS, H1);
    ask(ctx, BY_LAUNCH, RMS, H1);
    normjit_ctx_destroy(ctx);
    expect_compiles(3 + rms2);
    expect_warnings(&log2, 0, NULL);
    ff_log_destroy(&log2);
    entry_path(fx->cache, e->name, path);
    expect_valid_entry(path, e);
    assert_int_equal(check_images(), 1);
}

/* A real file system that is full: a 48 KiB tmpfs with 8 KiB left. */
static void test_no_space_tmpfs(void **state)
{
    fixture *fx = *state;
    char filler[PATH_MAX], path[PATH_MAX];
    const struct expected *e;
    struct statvfs vfs;
    ff_log log2;
    normjit_ctx *ctx;
    size_t left, n;
    int fd, ln;

    if (!try_mount_tmpfs(fx, "48k"))
        skip();
    snprintf(filler, sizeof filler, "%s/filler", fx->cache);
    assert_int_equal(statvfs(fx->cache, &vfs), 0);
    left = (size_t)vfs.f_bavail * vfs.f_frsize;
    assert_true(left > 16384);
    left -= 8192;
    fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    {
        static char zeros[4096];
        for (; left > 0; left -= n) {
            ssize_t w = write(fd, zeros, left < sizeof zeros ? left : sizeof zeros);
            assert_true(w > 0);
            n = (size_t)w;
        }
    }
    assert_int_equal(close(fd), 0);

    ctx = make_ctx(fx, &fx->log);
    e = expect_kernel(ctx, RMS, H1);
    /* Both kernels are larger than the space left, so their entries cannot fit. */
    assert_true(e->image.len > 8192);
    assert_true(expect_kernel(ctx, LN, H1)->image.len > 8192);
    ln = kernels_of(ctx, LN, H1);
    ask(ctx, BY_LAUNCH, RMS, H1);
    expect_compiles(1);
    expect_warnings(&fx->log, 1, "No space left on device");
    ask(ctx, BY_PREPARE, LN, H1);
    expect_compiles(1 + ln);
    expect_warnings(&fx->log, 1, NULL); /* one per context */
    normjit_ctx_destroy(ctx);
    assert_int_equal(check_images(), 1 + ln);
    assert_int_equal(count_files(fx->cache, ".njc"), 0);
    assert_int_equal(count_files(fx->cache, ".tmp."), 0);

    /* Space freed: the next context stores its kernel. */
    assert_int_equal(unlink(filler), 0);
    ff_log_init(&log2);
    ctx = make_ctx(fx, &log2);
    ask(ctx, BY_LAUNCH, RMS, H1);
    normjit_ctx_destroy(ctx);
    expect_warnings(&log2, 0, NULL);
    ff_log_destroy(&log2);
    entry_path(fx->cache, e->name, path);
    expect_valid_entry(path, e);
    assert_int_equal(check_images(), 1);
}

static int chmod_dirs_to;
static int chmod_dir(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (flag == FTW_D || flag == FTW_DP)
        chmod(path, (mode_t)chmod_dirs_to);
    return 0;
}

/*
 * A cache directory made read-only with chmod: cached kernels still load,
 * new ones are compiled and kept in memory. Root writes through any mode,
 * so there the read-only directory is emulated: rename() fails with EROFS
 * (the temporary file must then be removed).
 */
static void test_read_only_dir(void **state)
{
    fixture *fx = *state;
    const nj_disk_io io = {write_until_full, fsync, rename_fails};
    const int64_t hidden[] = {H1};
    char paths[1][PATH_MAX];
    normjit_ctx *ctx;
    int emulated, rms3;

    populate(fx, RMS, hidden, 1, paths);
    chmod_dirs_to = 0500;
    nftw(fx->cache, chmod_dir, 16, FTW_PHYS | FTW_DEPTH);
    emulated = access(fx->cache, W_OK) == 0;
    if (emulated)
        print_message("note: chmod 0500 does not stop this user (uid %d) from writing; "
                      "emulating a read-only directory with an injected rename() failing "
                      "with EROFS\n",
                      (int)geteuid());

    ctx = make_ctx(fx, &fx->log);
    rms3 = kernels_of(ctx, RMS, H3);
    if (emulated) {
        write_budget = (size_t)-1; /* the entry is written, then cannot be renamed into place */
        injected_errno = EROFS;
        nj_disk_cache_set_io(ctx->disk, &io);
    }
    /* The cached kernel loads (a read-only directory is still read). */
    ask(ctx, BY_LAUNCH, RMS, H1);
    expect_compiles(0);
    expect_warnings(&fx->log, emulated ? 0 : 1, emulated ? NULL : "not writable");
    ask(ctx, BY_LAUNCH, RMS, H2);
    expect_compiles(1);
    expect_warnings(&fx->log, 1, emulated ? "Read-only file system" : "not writable");
    ask(ctx, BY_PREPARE, RMS, H3);
    expect_compiles(1 + rms3);
    expect_warnings(&fx->log, 1, NULL);
    normjit_ctx_destroy(ctx);
    assert_int_equal(check_images(), 2 + rms3);
    assert_int_equal(count_files(fx->cache, ".njc"), 1);
    assert_int_equal(count_files(fx->cache, ".tmp."), 0);
}

/* A truly read-only file system (a tmpfs remounted read-only), which stops root too. */
static void test_read_only_mount(void **state)
{
    fixture *fx = *state;
    const int64_t hidden[] = {H1};
    char paths[1][PATH_MAX];
    normjit_ctx *ctx;
    int rms1;

    if (!try_mount_tmpfs(fx, "4m"))
        skip();
    populate(fx, RMS, hidden, 1, paths);
    if (mount("tmpfs", fx->cache, "tmpfs", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
              "size=4m,mode=0700") != 0) {
        print_message("skipped: cannot remount %s read-only: %s\n", fx->cache, strerror(errno));
        skip();
    }
    assert_int_not_equal(access(fx->cache, W_OK), 0);

    ctx = make_ctx(fx, &fx->log);
    rms1 = kernels_of(ctx, RMS, H1);
    /* The cached (decode) kernel loads; the other buckets' are compiled. */
    ask(ctx, BY_PREPARE, RMS, H1);
    expect_compiles(rms1 - 1);
    expect_warnings(&fx->log, 1, "not writable");
    ask(ctx, BY_LAUNCH, RMS, H2);
    expect_compiles(rms1);
    ask(ctx, BY_LAUNCH, LN, H2);
    expect_compiles(rms1 + 1);
    expect_warnings(&fx->log, 1, NULL);
    normjit_ctx_destroy(ctx);
    assert_int_equal(check_images(), rms1 + 2);
    assert_int_equal(count_files(fx->cache, ".njc"), 1);
}

static int chown_to(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return lchown(path, 65534, 65534) == 0 ? 0 : -1;
}

/*
 * A directory the library must not read: its (poisoned) entries are never
 * loaded, nothing is written there, kernels are compiled and kept in memory.
 */
static void refused_dir(fixture *fx, const char *why)
{
    normjit_ctx *ctx = make_ctx(fx, &fx->log);
    const int rms2 = kernels_of(ctx, RMS, H2);
    ask(ctx, BY_LAUNCH, RMS, H1);
    expect_compiles(1);
    expect_warnings(&fx->log, 1, why);
    ask(ctx, BY_PREPARE, RMS, H2);
    expect_compiles(1 + rms2);
    expect_warnings(&fx->log, 1, NULL);
    normjit_ctx_destroy(ctx);
    /* NVRTC's images only: never the poisoned ones of the refused directory. */
    assert_int_equal(check_images(), 1 + rms2);
}

static void poisoned_cache(fixture *fx, char paths[2][PATH_MAX], nj_buf saved[2])
{
    const int64_t hidden[] = {H1, H2};
    int i;
    populate(fx, RMS, hidden, 2, paths);
    for (i = 0; i < 2; i++) {
        poison_entry(paths[i]);
        read_whole(paths[i], &saved[i]);
    }
}

static void expect_unchanged(char paths[2][PATH_MAX], nj_buf saved[2])
{
    nj_buf now = {0};
    int i;
    for (i = 0; i < 2; i++) {
        read_whole(paths[i], &now);
        assert_int_equal(now.len, saved[i].len);
        assert_memory_equal(now.data, saved[i].data, now.len);
        nj_buf_free(&saved[i]);
    }
    nj_buf_free(&now);
}

/* A cache directory owned by another user (uid 65534): refused. */
static void test_dir_of_another_user(void **state)
{
    fixture *fx = *state;
    char paths[2][PATH_MAX];
    nj_buf saved[2] = {{0}, {0}};

    if (geteuid() != 0) {
        print_message("skipped: only root can give a directory to another user\n");
        skip();
    }
    poisoned_cache(fx, paths, saved);
    assert_int_equal(nftw(fx->cache, chown_to, 16, FTW_PHYS), 0);
    refused_dir(fx, "owned by another user");
    expect_unchanged(paths, saved);
    assert_int_equal(count_files(fx->cache, ".njc"), 2);
}

/* A cache directory others may write (0777, then 0770): refused. */
static void test_dir_writable_by_others(void **state)
{
    fixture *fx = *state;
    static const mode_t modes[] = {0777, 0770};
    char paths[2][PATH_MAX];
    nj_buf saved[2] = {{0}, {0}};
    size_t m;

    poisoned_cache(fx, paths, saved);
    for (m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        assert_int_equal(chmod(fx->cache, modes[m]), 0);
        atomic_store(&nvrtc_compiles, 0);
        ff_log_destroy(&fx->log);
        ff_log_init(&fx->log);
        refused_dir(fx, "writable by group or others");
        assert_int_equal(count_files(fx->cache, ".njc"), 2);
    }
    expect_unchanged(paths, saved);
}

/*
 * Damage entries written by a first context with `damage`; a second context
 * must recompile and replace them (one warning saying `why`), and a third
 * must then load them from disk without compiling.
 */
static void damaged_entries(fixture *fx, void (*damage)(const char *path, int which),
                            const char *why)
{
    const int64_t hidden[] = {H1, H2};
    char paths[2][PATH_MAX];
    const struct expected *e1, *e2;
    normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
    normjit_prepare_args p;
    ff_log log3;
    normjit_ctx *ctx;
    int64_t h2 = H2;
    int rms2;

    populate(fx, RMS, hidden, 2, paths);
    damage(paths[0], 0);
    damage(paths[1], 1);

    /* The entries are the decode kernels; H2's prepare also compiles its other buckets'. */
    ctx = make_ctx(fx, &fx->log);
    rms2 = kernels_of(ctx, RMS, H2);
    e1 = expect_kernel(ctx, RMS, H1);
    e2 = expect_kernel(ctx, RMS, H2);
    ask(ctx, BY_LAUNCH, RMS, H1);
    expect_compiles(1);
    expect_warnings(&fx->log, 1, why);
    expect_valid_entry(paths[0], e1);
    ask(ctx, BY_PREPARE, RMS, H2);
    expect_compiles(1 + rms2);
    expect_warnings(&fx->log, 1, NULL);
    expect_valid_entry(paths[1], e2);
    normjit_ctx_destroy(ctx);
    assert_int_equal(check_images(), 1 + rms2);
    assert_int_equal(count_files(fx->cache, ".njc"), 1 + rms2);
    assert_int_equal(count_files(fx->cache, ".tmp."), 0);

    /* The replaced entries are good: a fresh context loads them all without compiling. */
    ff_log_init(&log3);
    ctx = make_ctx(fx, &log3);
    ask(ctx, BY_LAUNCH, RMS, H1);
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.op = RMS;
    p.x_dtype = p.y_dtype = p.weight_dtype = F16;
    p.hidden = &h2;
    p.n_hidden = 1;
    assert_int_equal(normjit_prepare(ctx, &p, &st), NORMJIT_OK);
    assert_int_equal(st.compiled, 0);
    assert_int_equal(st.from_disk, rms2);
    normjit_ctx_destroy(ctx);
    expect_compiles(1 + rms2);
    expect_warnings(&log3, 0, NULL);
    ff_log_destroy(&log3);
    assert_int_equal(check_images(), 1 + rms2);
}

static void truncate_entry(const char *path, int which)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    /* Half the file, then just the header. */
    assert_int_equal(truncate(path, which == 0 ? st.st_size / 2 : NJ_ENTRY_HEADER_SIZE), 0);
}

static void flip_bit(const char *path, int which)
{
    nj_buf file = {0};
    nj_entry_view v;
    size_t at;
    read_whole(path, &file);
    assert_int_equal(nj_entry_parse(file.data, file.len, NULL, 0, &v), NJ_ENTRY_OK);
    /* A bit in the middle of the image, then one in the key text. */
    at = which == 0 ? (size_t)((const char *)v.payload - file.data) + v.payload_len / 2
                    : NJ_ENTRY_HEADER_SIZE + v.key_len / 3;
    file.data[at] ^= (char)(1 << (3 + which));
    write_whole(path, file.data, file.len);
    nj_buf_free(&file);
}

static void other_schema_field(const char *path, int which)
{
    nj_buf file = {0};
    (void)which;
    read_whole(path, &file);
    /* The schema is outside both checksums: the entry is whole, but of another format. */
    file.data[8] = (char)(NJ_CACHE_SCHEMA + 1 + which);
    write_whole(path, file.data, file.len);
    nj_buf_free(&file);
}

static void loosen_entry(const char *path, int which)
{
    if (which == 1 && geteuid() == 0)
        assert_int_equal(lchown(path, 65534, 65534), 0); /* another user's file */
    else
        assert_int_equal(chmod(path, which == 0 ? 0666 : 0620), 0);
}

static void test_truncated_entry(void **state)
{
    damaged_entries(*state, truncate_entry, "truncated");
}

static void test_bit_flipped_entry(void **state)
{
    damaged_entries(*state, flip_bit, "checksum mismatch");
}

static void test_entry_of_another_schema(void **state)
{
    damaged_entries(*state, other_schema_field, "another cache schema");
}

static void test_entry_others_could_write(void **state)
{
    damaged_entries(*state, loosen_entry, "not loading kernel cache entry");
}

/* The driver refuses a cached CUBIN: the entry is removed, the kernel recompiled and stored. */
static void test_driver_refuses_cached_image(void **state)
{
    fixture *fx = *state;
    const int64_t hidden[] = {H1, H2};
    char paths[2][PATH_MAX];
    const struct expected *e1, *e2;
    normjit_ctx *ctx;
    ff_log log3;
    int ln2;

    populate(fx, LN, hidden, 2, paths);
    ctx = make_ctx(fx, &fx->log);
    e1 = expect_kernel(ctx, LN, H1);
    e2 = expect_kernel(ctx, LN, H2);

    atomic_store(&ff_drv.fail_next_loads, 1);
    ask(ctx, BY_LAUNCH, LN, H1);
    assert_int_equal(atomic_load(&ff_drv.module_loads), 2); /* refused, then the fresh one */
    expect_compiles(1);
    expect_warnings(&fx->log, 1, "CUDA_ERROR_INVALID_IMAGE");
    expect_valid_entry(paths[0], e1);

    /* The prepare loads every bucket's kernel: the decode one's entry (refused, recompiled),
       and any other bucket's, compiled. */
    atomic_store(&ff_drv.fail_next_loads, 1);
    ln2 = kernels_of(ctx, LN, H2);
    ask(ctx, BY_PREPARE, LN, H2);
    assert_int_equal(atomic_load(&ff_drv.module_loads), 3 + ln2);
    expect_compiles(1 + ln2);
    expect_warnings(&fx->log, 1, NULL);
    expect_valid_entry(paths[1], e2);
    assert_int_equal(atomic_load(&ff_drv.launches), 1);
    normjit_ctx_destroy(ctx);
    /* Two refused images (from disk) and the accepted ones (fresh), all NVRTC's. */
    assert_int_equal(check_images(), 3 + ln2);

    ff_log_init(&log3);
    ctx = make_ctx(fx, &log3);
    ask(ctx, BY_LAUNCH, LN, H1);
    ask(ctx, BY_LAUNCH, LN, H2);
    normjit_ctx_destroy(ctx);
    expect_compiles(1 + ln2);
    expect_warnings(&log3, 0, NULL);
    ff_log_destroy(&log3);
    assert_int_equal(check_images(), 2);
}

/*
 * Entries in the folders of other schemas (v<S-1>, v<S+1>, as an older or
 * newer normjit leaves them) are not this version's: not read, not touched.
 * A miss is silent, so no warning is expected here.
 */
static void test_entry_in_other_schema_folder(void **state)
{
    fixture *fx = *state;
    const int64_t hidden[] = {H1};
    char paths[1][PATH_MAX], foreign[2][PATH_MAX], ours[PATH_MAX];
    nj_buf entry = {0}, saved[2] = {{0}, {0}}, now = {0};
    const struct expected *e;
    normjit_ctx *ctx;
    int i;

    populate(fx, RMS, hidden, 1, paths);
    /* paths[0] is <cache>/v<S>/sm_90/xx/<digest>.njc: copy it to v<S-1> and v<S+1>. */
    snprintf(ours, sizeof ours, "%s/v%d/", fx->cache, NJ_CACHE_SCHEMA);
    assert_int_equal(strncmp(paths[0], ours, strlen(ours)), 0);
    read_whole(paths[0], &entry);
    for (i = 0; i < 2; i++) {
        char dir[PATH_MAX];
        int fd;
        assert_true(snprintf(foreign[i], sizeof foreign[i], "%s/v%d/%s", fx->cache,
                             NJ_CACHE_SCHEMA + (i ? 1 : -1),
                             paths[0] + strlen(ours)) < (int)sizeof foreign[i]);
        snprintf(dir, sizeof dir, "%s", foreign[i]);
        *strrchr(dir, '/') = '\0';
        assert_int_equal(nj_mkdir_p(dir, 0700), 0);
        fd = open(foreign[i], O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, entry.data, entry.len), (ssize_t)entry.len);
        assert_int_equal(close(fd), 0);
    }
    poison_entry(foreign[1]); /* were it read, check_images would tell */
    for (i = 0; i < 2; i++)
        read_whole(foreign[i], &saved[i]);
    assert_int_equal(unlink(paths[0]), 0);

    ctx = make_ctx(fx, &fx->log);
    e = expect_kernel(ctx, RMS, H1);
    ask(ctx, BY_LAUNCH, RMS, H1);
    expect_compiles(1);
    expect_warnings(&fx->log, 0, NULL);
    normjit_ctx_destroy(ctx);
    assert_int_equal(check_images(), 1);
    /* Stored again in its own folder; the foreign ones untouched. */
    expect_valid_entry(paths[0], e);
    for (i = 0; i < 2; i++) {
        read_whole(foreign[i], &now);
        assert_int_equal(now.len, saved[i].len);
        assert_memory_equal(now.data, saved[i].data, now.len);
        nj_buf_free(&saved[i]);
    }
    nj_buf_free(&now);
    nj_buf_free(&entry);
}

/* normjit_prepare with stats, on f16 rmsnorm of `hidden`: the stats. */
static normjit_prepare_stats prepare_stats(normjit_ctx *ctx, int64_t hidden)
{
    normjit_prepare_stats st;
    normjit_prepare_args p;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.op = RMS;
    p.x_dtype = p.y_dtype = p.weight_dtype = F16;
    p.hidden = &hidden;
    p.n_hidden = 1;
    expect_kernel(ctx, RMS, hidden);
    if (normjit_prepare(ctx, &p, &st) != NORMJIT_OK)
        fail_msg("prepare: %s", normjit_last_error());
    return st;
}

/*
 * A kernel compiled but not stored is counted in prepare_stats.not_cached
 * (what 'normjit warm' exits 1 on): a full file system (injected ENOSPC), a
 * read-only one (injected EROFS at the rename), a cache directory the
 * library refuses. Stored kernels are not counted; the call succeeds.
 */
static void test_not_cached_counted(void **state)
{
    static const struct {
        const char *what;
        nj_disk_io io;
        int err;
    } faults[] = {
        {"no space", {write_until_full, fsync, rename}, ENOSPC},
        {"read-only", {write_until_full, fsync, rename_fails}, EROFS},
    };
    fixture *fx = *state;
    normjit_prepare_stats st;
    normjit_ctx *ctx;
    size_t i;

    for (i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        ff_log log;
        ff_log_init(&log);
        ctx = make_ctx(fx, &log);
        write_budget = faults[i].err == ENOSPC ? 0 : (size_t)-1;
        injected_errno = faults[i].err;
        nj_disk_cache_set_io(ctx->disk, &faults[i].io);
        st = prepare_stats(ctx, H1 + (int64_t)i * 1024);
        assert_true(st.compiled > 0);
        if (st.not_cached != st.compiled)
            fail_msg("%s: %u compiled, %u not cached", faults[i].what, st.compiled,
                     st.not_cached);
        expect_warnings(&log, 1, strerror(faults[i].err));
        /* The same kernels again: in memory now, and still not on disk, but not compiled. */
        st = prepare_stats(ctx, H1 + (int64_t)i * 1024);
        assert_int_equal(st.compiled, 0);
        nj_disk_cache_set_io(ctx->disk, NULL);
        normjit_ctx_destroy(ctx);
        ff_log_destroy(&log);
    }
    assert_int_equal(count_files(fx->cache, ".njc"), 0);

    /* Stored: nothing counted. */
    ctx = make_ctx(fx, &fx->log);
    st = prepare_stats(ctx, H3);
    assert_true(st.compiled > 0);
    assert_int_equal(st.not_cached, 0);
    normjit_ctx_destroy(ctx);

    /* A refused cache directory: everything compiled is counted. */
    assert_int_equal(chmod(fx->cache, 0777), 0);
    {
        ff_log log;
        ff_log_init(&log);
        ctx = make_ctx(fx, &log);
        st = prepare_stats(ctx, H2);
        assert_true(st.compiled > 0);
        assert_int_equal(st.not_cached, st.compiled);
        expect_warnings(&log, 1, "writable by group or others");
        normjit_ctx_destroy(ctx);
        ff_log_destroy(&log);
    }
    assert_int_equal(chmod(fx->cache, 0700), 0);
    check_images();
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_space_injected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_space_tmpfs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_mount, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_of_another_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_writable_by_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bit_flipped_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_of_another_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_others_could_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_driver_refuses_cached_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_in_other_schema_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_cached_counted, setup, teardown),
    };
    int status, i;

    status = nj_nvrtc_load(&real_nvrtc);
    if (status != NORMJIT_OK) {
        printf("skipped: these tests compile with the real NVRTC: %s\n", normjit_last_error());
        return 77;
    }
    /* As root, mount the test's tmpfs in a private namespace: a crash leaves no mount behind. */
    if (geteuid() == 0 && unshare(CLONE_NEWNS) == 0)
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    counting_nvrtc = *real_nvrtc;
    counting_nvrtc.compile_program = counting_compile;
    unsetenv("NORMJIT_LOG");
    status = cmocka_run_group_tests(tests, NULL, NULL);
    for (i = 0; i < n_expected; i++)
        nj_buf_free(&expected[i].image);
    return status;
}
