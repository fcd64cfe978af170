/* normjit cache: list, verify, prune or clear the kernel cache directory. */
#include "cache_admin.h"
#include "cache_key.h"
#include "disk_cache.h"
#include "parse.h"
#include "tool.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char help[] =
    "usage: normjit cache <command> [options]\n"
    "\n"
    "Look after the disk cache of compiled kernels.\n"
    "\n"
    "commands:\n"
    "  list    one line per entry: op, dtypes, hidden size, kernel knobs, target,\n"
    "          size, age and digest; then the totals\n"
    "  verify  check every entry completely; --fix removes the corrupt ones\n"
    "  prune   remove least recently used entries down to --max-size SIZE\n"
    "  clear   remove every entry and temporary file\n"
    "\n"
    "Every command takes --cache-dir DIR (default: NORMJIT_CACHE_DIR, else\n"
    "XDG_CACHE_HOME/normjit, else ~/.cache/normjit) and first removes the\n"
    "temporary files of writers that died (those older than one hour; younger\n"
    "ones may belong to a writer at work and are left alone). A directory owned\n"
    "by another user or writable by group or others is never changed ('list'\n"
    "shows it with a warning). 'normjit cache <command> --help' says more.\n"
    "Exit status: 0 success, 1 failure (or corrupt entries found), 2 usage error.\n";

static const char list_help[] =
    "usage: normjit cache list [--cache-dir DIR]\n"
    "\n"
    "List the cache's entries sorted by op, dtype and hidden size: op, dtypes\n"
    "(input->output, weight), hidden size, kernel knobs (vector width, threads\n"
    "per row, rows per CTA, cluster, occupancy, storage), target, size, age\n"
    "since last use and the file's digest; then the number of entries, their\n"
    "total size and the temporary files. Only headers and keys are read: an\n"
    "entry whose header is damaged shows as 'corrupt', one of another cache\n"
    "schema as 'stale' ('normjit cache verify' checks everything).\n"
    "\n"
    "  --cache-dir DIR  the cache directory (default: as the library finds it)\n";

static const char verify_help[] =
    "usage: normjit cache verify [--fix] [--cache-dir DIR]\n"
    "\n"
    "Check every entry as the library does before loading one (magic, schema,\n"
    "lengths, key and payload checksums), and that its file name is the digest\n"
    "of its key and that it sits in its target's and digest's folder. Print each\n"
    "corrupt entry with the reason, and each entry of another cache schema\n"
    "(another normjit version's folder) as stale; stale entries are left alone.\n"
    "\n"
    "  --fix            remove the corrupt entries\n"
    "  --cache-dir DIR  the cache directory (default: as the library finds it)\n"
    "\n"
    "Exit status: 0 when no entry is corrupt, 1 when any is (even with --fix).\n";

static const char prune_help[] =
    "usage: normjit cache prune --max-size SIZE [--cache-dir DIR]\n"
    "\n"
    "Remove the least recently used entries (the library marks an entry used\n"
    "each time it loads one) until the entries total at most SIZE bytes; K, M,\n"
    "G or T multiply by powers of 1024 (512M). Print each entry removed and the\n"
    "new total.\n"
    "\n"
    "  --max-size SIZE  the size to shrink the cache to (required)\n"
    "  --cache-dir DIR  the cache directory (default: as the library finds it)\n";

static const char clear_help[] =
    "usage: normjit cache clear [--cache-dir DIR]\n"
    "\n"
    "Remove every entry and temporary file, of every cache schema, and the\n"
    "folders left empty. Only normjit's files (*.njc and *.njc.tmp.* inside\n"
    "v<N>/<target>/<xx>/) are removed; the directory itself stays.\n"
    "\n"
    "  --cache-dir DIR  the cache directory (default: as the library finds it)\n";

enum { CMD_LIST, CMD_VERIFY, CMD_PRUNE, CMD_CLEAR };

static const struct {
    const char *name;
    const char *usage_name;
    const char *help;
} subcommands[] = {
    {"list", "cache list", list_help},
    {"verify", "cache verify", verify_help},
    {"prune", "cache prune", prune_help},
    {"clear", "cache clear", clear_help},
};

/* A path or name with anything unprintable replaced by '?': names on disk are not trusted. */
static void put_safe(const char *s)
{
    for (; *s; s++)
        putchar(isprint((unsigned char)*s) ? *s : '?');
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* The file's name, for entries whose name is not a digest. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void print_sweep(size_t swept)
{
    printf("swept %zu stale temporary %s (older than 1 hour)\n", swept,
           plural(swept, "file", "files"));
}

static size_t count_temps(const nj_admin_listing *l)
{
    size_t i, n = 0;
    for (i = 0; i < l->n; i++)
        if (l->files[i].state == NJ_ADMIN_TEMP && !l->files[i].removed)
            n++;
    return n;
}

/* "rmsnorm f16->f16, f16 hidden=1024 (v8 t128 r1 c1 o0 reg, sm_90)". */
static void describe(const nj_admin_file *f)
{
    if (f->state == NJ_ADMIN_OK && f->key.has_variant)
        printf("%s %s->%s, %s hidden=%lld (%s, ", f->key.op, f->key.x, f->key.y, f->key.w,
               f->key.hidden, f->key.knobs);
    else if (f->state == NJ_ADMIN_STALE)
        printf("stale entry (schema v%d, ", f->schema);
    else
        printf("%s entry (", f->state == NJ_ADMIN_CORRUPT ? "corrupt" : "unknown");
    put_safe(f->target);
    printf(") ");
    if (f->digest[0])
        printf("%s", f->digest);
    else
        put_safe(base_name(f->path));
}

static int cmd_list(const char *root, int trusted, int exists, nj_admin_listing *l)
{
    time_t now = time(NULL);
    size_t i, corrupt = 0, stale = 0, entries, swept = 0;
    uint64_t bytes;
    char total[32];

    if (trusted)
        swept = nj_admin_sweep(l, now, NJ_ADMIN_TEMP_MAX_AGE);
    nj_admin_sort(l);
    printf("cache ");
    put_safe(root);
    printf("%s\n", exists ? "" : " (does not exist)");
    entries = nj_admin_entry_bytes(l, &bytes);
    if (entries)
        printf("%-10s %-16s %8s  %-22s %-11s %10s %5s  %s\n", "OP", "DTYPES x->y, w", "HIDDEN",
               "KERNEL", "TARGET", "SIZE", "AGE", "DIGEST");
    for (i = 0; i < l->n; i++) {
        const nj_admin_file *f = &l->files[i];
        char size[32], age[16], dtypes[32], hidden[16], target[24];
        const char *op = f->key.op, *knobs = f->key.knobs;
        if (f->state == NJ_ADMIN_TEMP || f->removed)
            continue;
        nj_admin_human_size((uint64_t)f->st.st_size, size, sizeof size);
        nj_admin_human_age(f->st.st_mtim.tv_sec, now, age, sizeof age);
        if (f->state == NJ_ADMIN_OK && f->key.has_variant) {
            snprintf(dtypes, sizeof dtypes, "%s->%s, %s", f->key.x, f->key.y, f->key.w);
            snprintf(hidden, sizeof hidden, "%lld", f->key.hidden);
        } else {
            if (f->state == NJ_ADMIN_CORRUPT)
                corrupt++;
            else if (f->state == NJ_ADMIN_STALE)
                stale++;
            op = f->state == NJ_ADMIN_CORRUPT ? "corrupt" : f->state == NJ_ADMIN_STALE ? "stale"
                                                                                        : "?";
            strcpy(dtypes, "-");
            strcpy(hidden, "-");
            knobs = "-";
        }
        snprintf(target, sizeof target, "%s", f->target[0] ? f->target : "?");
        printf("%-10s %-16s %8s  %-22s ", op, dtypes, hidden, knobs);
        put_safe(target);
        printf("%*s %10s %5s  ", (int)(strlen(target) < 11 ? 11 - strlen(target) : 0), "", size,
               age);
        if (f->digest[0])
            printf("%s", f->digest);
        else
            put_safe(base_name(f->path));
        if (f->state == NJ_ADMIN_CORRUPT) {
            printf("  (%s%s", f->problem, f->detail[0] ? ": " : "");
            put_safe(f->detail);
            printf(")");
        } else if (f->state == NJ_ADMIN_STALE) {
            printf("  (schema v%d; this normjit uses v%d)", f->schema, NJ_CACHE_SCHEMA);
        }
        printf("\n");
    }
    nj_admin_human_size(bytes, total, sizeof total);
    printf("%zu %s, %s", entries, plural(entries, "entry", "entries"), total);
    if (corrupt || stale)
        printf(" (%zu corrupt, %zu stale)", corrupt, stale);
    printf("; %zu temporary %s\n", count_temps(l), plural(count_temps(l), "file", "files"));
    if (trusted)
        print_sweep(swept);
    return NJ_EXIT_OK;
}

static int cmd_verify(nj_admin_listing *l, int fix)
{
    size_t i, swept, checked = 0, valid = 0, corrupt = 0, stale = 0, removed = 0;
    int failed = 0;

    swept = nj_admin_sweep(l, time(NULL), NJ_ADMIN_TEMP_MAX_AGE);
    nj_admin_sort(l);
    for (i = 0; i < l->n; i++) {
        nj_admin_file *f = &l->files[i];
        if (f->state == NJ_ADMIN_TEMP)
            continue;
        checked++;
        switch (nj_admin_verify(f)) {
        case NJ_ADMIN_OK:
            valid++;
            break;
        case NJ_ADMIN_STALE:
            stale++;
            printf("stale: ");
            put_safe(f->path);
            printf(": an entry of cache schema v%d (this normjit uses v%d); left alone\n",
                   f->schema, NJ_CACHE_SCHEMA);
            break;
        default:
            corrupt++;
            printf("corrupt: ");
            put_safe(f->path);
            printf(": %s", f->problem);
            if (f->detail[0]) {
                printf(" (");
                put_safe(f->detail);
                printf(")");
            }
            if (fix) {
                if (nj_admin_remove(f) == 0) {
                    removed++;
                    printf("; removed");
                } else {
                    failed = 1;
                    printf("; cannot remove it: %s", strerror(errno));
                }
            }
            printf("\n");
            break;
        }
    }
    printf("verify: %zu %s checked: %zu valid, %zu corrupt", checked,
           plural(checked, "entry", "entries"), valid, corrupt);
    if (fix)
        printf(" (%zu removed)", removed);
    printf(", %zu stale; %zu temporary %s in progress\n", stale, count_temps(l),
           plural(count_temps(l), "file", "files"));
    print_sweep(swept);
    if (corrupt && !fix)
        printf("run 'normjit cache verify --fix' to remove the corrupt entries\n");
    fflush(stdout);
    return corrupt || failed ? NJ_EXIT_FAIL : NJ_EXIT_OK;
}

static int cmd_prune(nj_admin_listing *l, uint64_t max_size)
{
    time_t now = time(NULL);
    size_t swept, n, i, removed = 0, entries, *order;
    uint64_t bytes, removed_bytes = 0;
    char size[32], limit[32], age[16];
    int failed = 0;

    swept = nj_admin_sweep(l, now, NJ_ADMIN_TEMP_MAX_AGE);
    order = malloc((l->n ? l->n : 1) * sizeof *order);
    if (!order) {
        fprintf(stderr, "normjit cache prune: out of memory\n");
        return NJ_EXIT_FAIL;
    }
    n = nj_admin_prune_plan(l, max_size, order);
    for (i = 0; i < n; i++) {
        nj_admin_file *f = &l->files[order[i]];
        nj_admin_human_size((uint64_t)f->st.st_size, size, sizeof size);
        nj_admin_human_age(f->st.st_mtim.tv_sec, now, age, sizeof age);
        if (nj_admin_remove(f) == 0) {
            removed++;
            removed_bytes += (uint64_t)f->st.st_size;
            printf("removed ");
        } else {
            failed = 1;
            printf("cannot remove (%s) ", strerror(errno));
        }
        describe(f);
        printf(", %s, last used %s ago\n", size, age);
    }
    entries = nj_admin_entry_bytes(l, &bytes);
    nj_admin_human_size(removed_bytes, size, sizeof size);
    printf("prune: removed %zu %s (%s); ", removed, plural(removed, "entry", "entries"), size);
    nj_admin_human_size(bytes, size, sizeof size);
    nj_admin_human_size(max_size, limit, sizeof limit);
    printf("cache now %zu %s, %s (limit %s)\n", entries, plural(entries, "entry", "entries"), size,
           limit);
    print_sweep(swept);
    free(order);
    return failed ? NJ_EXIT_FAIL : NJ_EXIT_OK;
}

static int cmd_clear(const char *root, nj_admin_listing *l)
{
    size_t swept, entries, temps, folders, left;
    uint64_t bytes, left_bytes;
    char size[32];

    swept = nj_admin_sweep(l, time(NULL), NJ_ADMIN_TEMP_MAX_AGE);
    nj_admin_entry_bytes(l, &bytes);
    nj_admin_clear(root, l, &entries, &temps, &folders);
    left = nj_admin_entry_bytes(l, &left_bytes) + count_temps(l);
    nj_admin_human_size(bytes - left_bytes, size, sizeof size);
    printf("clear: removed %zu %s (%s), %zu temporary %s and %zu empty %s from ", entries,
           plural(entries, "entry", "entries"), size, temps, plural(temps, "file", "files"),
           folders, plural(folders, "folder", "folders"));
    put_safe(root);
    printf("\n");
    print_sweep(swept);
    if (left) {
        fprintf(stderr, "normjit cache clear: %zu %s could not be removed\n", left,
                plural(left, "file", "files"));
        return NJ_EXIT_FAIL;
    }
    return NJ_EXIT_OK;
}

int nj_cmd_cache(int argc, char **argv)
{
    static const struct option opts[] = {{"cache-dir", required_argument, NULL, 'c'},
                                         {"fix", no_argument, NULL, 'f'},
                                         {"max-size", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *cache_dir = NULL, *name;
    char *root = NULL, why[PATH_MAX + 256], err[256];
    uint64_t max_size = 0;
    int cmd, c, fix = 0, have_max = 0, exists, trusted, status, rc;
    nj_admin_listing l;

    if (argc < 2)
        return nj_usage_error("cache", "missing command: list, verify, prune or clear");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(help, stdout);
        return NJ_EXIT_OK;
    }
    for (cmd = 0; cmd < (int)(sizeof subcommands / sizeof subcommands[0]); cmd++)
        if (!strcmp(argv[1], subcommands[cmd].name))
            break;
    if (cmd == (int)(sizeof subcommands / sizeof subcommands[0]))
        return nj_usage_error("cache", "unknown command '%s': list, verify, prune or clear",
                              argv[1]);
    name = subcommands[cmd].usage_name;
    argc--;
    argv++;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cache_dir = optarg;
            break;
        case 'f':
            if (cmd != CMD_VERIFY)
                return nj_usage_error(name, "--fix goes with 'cache verify'");
            fix = 1;
            break;
        case 'm':
            if (cmd != CMD_PRUNE)
                return nj_usage_error(name, "--max-size goes with 'cache prune'");
            if (nj_parse_size(optarg, &max_size, err, sizeof err))
                return nj_usage_error(name, "--max-size: %s", err);
            have_max = 1;
            break;
        case 'h':
            fputs(subcommands[cmd].help, stdout);
            return NJ_EXIT_OK;
        default:
            return nj_usage_error(name, "unknown option");
        }
    }
    if (optind < argc)
        return nj_usage_error(name, "unexpected argument '%s'", argv[optind]);
    if (cmd == CMD_PRUNE && !have_max)
        return nj_usage_error(name, "--max-size SIZE is required");

    if ((status = nj_disk_cache_resolve(cache_dir, &root)) != NORMJIT_OK)
        return nj_report_failure(name, status);
    trusted = nj_admin_check_root(root, &exists, why, sizeof why) == 0;
    if (!trusted) {
        if (cmd != CMD_LIST) {
            fprintf(stderr, "normjit %s: refusing to touch the cache: %s\n", name, why);
            free(root);
            return NJ_EXIT_FAIL;
        }
        printf("warning: %s\n", why);
    }
    if (nj_admin_collect(root, cmd == CMD_LIST || cmd == CMD_PRUNE, &l) != 0) {
        fprintf(stderr, "normjit %s: cannot read %s: %s\n", name, root, strerror(errno));
        free(root);
        return NJ_EXIT_FAIL;
    }
    switch (cmd) {
    case CMD_LIST:
        rc = cmd_list(root, trusted, exists, &l);
        break;
    case CMD_VERIFY:
        rc = cmd_verify(&l, fix);
        break;
    case CMD_PRUNE:
        rc = cmd_prune(&l, max_size);
        break;
    default:
        rc = cmd_clear(root, &l);
        break;
    }
    nj_admin_listing_free(&l);
    free(root);
    return rc;
}
