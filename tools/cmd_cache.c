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
    "          size, age and digest; then the totals (--json: one JSON document)\n"
    "  verify  check every entry completely; --fix removes the corrupt ones\n"
    "  prune   remove corrupt, then least recently used entries down to --max-size\n"
    "  clear   remove every entry and temporary file\n"
    "\n"
    "Every command takes --cache-dir DIR (default: NORMJIT_CACHE_DIR, else\n"
    "XDG_CACHE_HOME/normjit, else ~/.cache/normjit) and first removes the\n"
    "temporary files of writers that died: those dated more than one hour\n"
    "before or after now (younger ones may belong to a writer at work). The\n"
    "tree is read as the library reads it: the directory may be a link, but no\n"
    "link below it is followed, and a folder that is a link, another user's or\n"
    "writable by others is not used by the library and not entered here. A\n"
    "directory owned by another user or writable by group or others is never\n"
    "changed ('list' shows it with a warning). 'normjit cache <command> --help'\n"
    "says more.\n"
    "Exit status: 0 success; 1 failure: something could not be inspected or\n"
    "removed (each is named with the reason), or 'verify' found corrupt entries;\n"
    "2 usage error.\n";

static const char list_help[] =
    "usage: normjit cache list [--json] [--cache-dir DIR]\n"
    "\n"
    "List the cache's entries sorted by op, dtype and hidden size: op, dtypes\n"
    "(input->output, weight), hidden size, kernel knobs (vector width, threads\n"
    "per row, rows per CTA, cluster, occupancy, storage), target, size, age\n"
    "since last use and the file's digest; then the number of entries, their\n"
    "total size and the temporary files. Only headers and keys are read: an\n"
    "entry whose header is damaged, or a FIFO, folder or link with an entry's\n"
    "name, shows as 'corrupt', one of another cache schema as 'stale' ('normjit\n"
    "cache verify' checks everything). Exits 1 when a folder or an entry could\n"
    "not be read.\n"
    "\n"
    "  --json           print one JSON object: \"cache\", \"exists\", \"usable\",\n"
    "                   \"entries\" (path, digest, target, schema, state, bytes,\n"
    "                   mtime, and op, x, y, w, hidden, knobs when known, problem\n"
    "                   when corrupt), \"temporary_files\", \"problems\" (path, why)\n"
    "                   and \"totals\"\n"
    "  --cache-dir DIR  the cache directory (default: as the library finds it)\n";

static const char verify_help[] =
    "usage: normjit cache verify [--fix] [--cache-dir DIR]\n"
    "\n"
    "Check every entry as the library does before loading one (a regular file of\n"
    "this user only, magic, schema, lengths, key and payload checksums), and that\n"
    "its file name is the digest of its key and that it sits in its target's and\n"
    "digest's folder. Print each corrupt entry with the reason, and each entry of\n"
    "another cache schema (another normjit version's folder) as stale; stale\n"
    "entries are left alone. An entry removed by another process meanwhile is\n"
    "counted as gone, not corrupt.\n"
    "\n"
    "  --fix            remove the corrupt entries (a folder with an entry's name\n"
    "                   only when it is empty)\n"
    "  --cache-dir DIR  the cache directory (default: as the library finds it)\n"
    "\n"
    "Exit status: 0 when no entry is corrupt and everything could be inspected,\n"
    "1 otherwise (even with --fix).\n";

static const char prune_help[] =
    "usage: normjit cache prune --max-size SIZE [--cache-dir DIR]\n"
    "\n"
    "Remove corrupt entries first, then the least recently used ones (the\n"
    "library marks an entry used each time it loads one) until the entries total\n"
    "at most SIZE bytes; K, M, G or T multiply by powers of 1024, B may follow\n"
    "(512M, 2GiB, 4096B). Print each entry removed and the new total.\n"
    "\n"
    "  --max-size SIZE  the size to shrink the cache to (required)\n"
    "  --cache-dir DIR  the cache directory (default: as the library finds it)\n";

static const char clear_help[] =
    "usage: normjit cache clear [--cache-dir DIR]\n"
    "\n"
    "Remove every entry and temporary file, of every cache schema, and the\n"
    "folders left empty. Only normjit's files (*.njc and *.njc.tmp.* inside\n"
    "v<N>/<target>/<xx>/) are removed, whatever kind of file they are (a link is\n"
    "removed, not what it points at; a folder with such a name only when empty);\n"
    "the directory itself stays. A folder the walk does not enter (a link,\n"
    "another user's) is named and left alone, and the command exits 1.\n"
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
static void put_safe_to(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc(isprint((unsigned char)*s) ? *s : '?', out);
}

static void put_safe(const char *s)
{
    put_safe_to(stdout, s);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static int utf8_length(const unsigned char *s)
{
    int n, i;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    return n;
}

/* A JSON string: names on disk may hold any byte; invalid UTF-8 becomes U+FFFD. */
static void json_string(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    putchar('"');
    while (*s) {
        int n = utf8_length(s);
        if (n == 0) {
            fputs("\\ufffd", stdout);
            s++;
        } else if (*s == '"' || *s == '\\') {
            printf("\\%c", *s++);
        } else if (*s < 0x20 || *s == 0x7f) {
            printf("\\u%04x", *s++);
        } else {
            fwrite(s, 1, (size_t)n, stdout);
            s += n;
        }
    }
    putchar('"');
}

/* `"key": "value"` with a leading comma. */
static void json_field(const char *key, const char *value)
{
    printf(", \"%s\": ", key);
    json_string(value);
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
    printf("swept %zu stale temporary %s (dated over 1 hour before or after now)\n", swept,
           plural(swept, "file", "files"));
}

/* Name on stderr each folder the walk refused or could not read; returns how many. */
static size_t report_problems(const char *name, const nj_admin_listing *l)
{
    size_t i;
    for (i = 0; i < l->n_problems; i++) {
        fprintf(stderr, "normjit %s: not inspected: ", name);
        put_safe_to(stderr, l->problems[i].path);
        fprintf(stderr, " %s\n", l->problems[i].why);
    }
    if (l->n_problems)
        fprintf(stderr,
                "normjit %s: %zu %s not inspected; the library does not use %s either\n",
                name, l->n_problems, plural(l->n_problems, "folder was", "folders were"),
                plural(l->n_problems, "it", "them"));
    return l->n_problems;
}

static size_t count_state(const nj_admin_listing *l, int state)
{
    size_t i, n = 0;
    for (i = 0; i < l->n; i++)
        if (l->files[i].state == state)
            n++;
    return n;
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

/* Bytes of an entry's file as the listing counts them (a FIFO or a folder: 0). */
static uint64_t file_bytes(const nj_admin_file *f)
{
    return S_ISREG(f->st.st_mode) ? (uint64_t)f->st.st_size : 0;
}

static const char *state_name(int state)
{
    static const char *const names[] = {"valid", "corrupt", "stale", "temporary", "gone"};
    return state >= 0 && state <= NJ_ADMIN_GONE ? names[state] : "unknown";
}

/* The listing as one JSON object (see list_help). */
static void print_json(const char *root, int trusted, int exists, const char *warning,
                       const nj_admin_listing *l, size_t swept, time_t now)
{
    size_t i, entries, corrupt = 0, stale = 0, temps = 0, first;
    uint64_t bytes;

    entries = nj_admin_entry_bytes(l, &bytes);
    printf("{\"cache\": ");
    json_string(root);
    printf(", \"exists\": %s, \"usable\": %s", exists ? "true" : "false",
           trusted ? "true" : "false");
    if (warning)
        json_field("warning", warning);
    printf(", \"schema\": %d, \"now\": %lld,\n \"entries\": [", NJ_CACHE_SCHEMA, (long long)now);
    for (i = 0, first = 1; i < l->n; i++) {
        const nj_admin_file *f = &l->files[i];
        if (f->state == NJ_ADMIN_TEMP || f->state == NJ_ADMIN_GONE || f->removed)
            continue;
        corrupt += f->state == NJ_ADMIN_CORRUPT;
        stale += f->state == NJ_ADMIN_STALE;
        printf("%s\n  {\"path\": ", first ? "" : ",");
        first = 0;
        json_string(f->path);
        json_field("digest", f->digest);
        json_field("target", f->target);
        printf(", \"schema\": %d", f->schema);
        json_field("state", state_name(f->state));
        printf(", \"bytes\": %llu, \"mtime\": %lld", (unsigned long long)file_bytes(f),
               (long long)f->st.st_mtim.tv_sec);
        if (f->state == NJ_ADMIN_OK && f->key.has_variant) {
            json_field("op", f->key.op);
            json_field("x", f->key.x);
            json_field("y", f->key.y);
            json_field("w", f->key.w);
            printf(", \"hidden\": %lld", f->key.hidden);
            json_field("knobs", f->key.knobs);
        }
        if (f->state == NJ_ADMIN_CORRUPT) {
            json_field("problem", f->problem);
            json_field("detail", f->detail);
        }
        printf("}");
    }
    printf("],\n \"temporary_files\": [");
    for (i = 0, first = 1; i < l->n; i++) {
        const nj_admin_file *f = &l->files[i];
        if (f->state != NJ_ADMIN_TEMP || f->removed)
            continue;
        temps++;
        printf("%s\n  {\"path\": ", first ? "" : ",");
        first = 0;
        json_string(f->path);
        printf(", \"bytes\": %llu, \"mtime\": %lld}", (unsigned long long)file_bytes(f),
               (long long)f->st.st_mtim.tv_sec);
    }
    printf("],\n \"problems\": [");
    for (i = 0; i < l->n_problems; i++) {
        printf("%s\n  {\"path\": ", i ? "," : "");
        json_string(l->problems[i].path);
        json_field("why", l->problems[i].why);
        printf("}");
    }
    printf("],\n \"totals\": {\"entries\": %zu, \"bytes\": %llu, \"corrupt\": %zu, \"stale\": %zu, "
           "\"gone\": %zu, \"temporary_files\": %zu, \"swept\": %zu, \"problems\": %zu}}\n",
           entries, (unsigned long long)bytes, corrupt, stale, count_state(l, NJ_ADMIN_GONE),
           temps, swept, l->n_problems);
}

static int cmd_list(const char *root, int trusted, int exists, const char *warning, int json,
                    nj_admin_listing *l)
{
    time_t now = time(NULL);
    size_t i, corrupt = 0, stale = 0, unreadable = 0, entries, swept = 0;
    uint64_t bytes;
    char total[32];

    if (trusted)
        swept = nj_admin_sweep(l, now, NJ_ADMIN_TEMP_MAX_AGE);
    nj_admin_sort(l);
    for (i = 0; i < l->n; i++)
        unreadable += l->files[i].unreadable;
    if (json) {
        print_json(root, trusted, exists, warning, l, swept, now);
        fflush(stdout);
        report_problems("cache list", l);
        return l->n_problems || unreadable ? NJ_EXIT_FAIL : NJ_EXIT_OK;
    }
    if (warning)
        printf("warning: %s\n", warning);
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
        if (f->state == NJ_ADMIN_TEMP || f->state == NJ_ADMIN_GONE || f->removed)
            continue;
        nj_admin_human_size(file_bytes(f), size, sizeof size);
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
    if (count_state(l, NJ_ADMIN_GONE))
        printf("%zu %s removed by another process while listing\n",
               count_state(l, NJ_ADMIN_GONE),
               plural(count_state(l, NJ_ADMIN_GONE), "entry was", "entries were"));
    if (trusted)
        print_sweep(swept);
    fflush(stdout);
    if (unreadable)
        fprintf(stderr, "normjit cache list: %zu %s could not be read (see 'cannot be opened' "
                        "above)\n",
                unreadable, plural(unreadable, "entry", "entries"));
    return report_problems("cache list", l) || unreadable ? NJ_EXIT_FAIL : NJ_EXIT_OK;
}

static int cmd_verify(nj_admin_listing *l, int fix)
{
    size_t i, swept, checked = 0, valid = 0, corrupt = 0, stale = 0, gone = 0, removed = 0;
    int failed = 0;

    swept = nj_admin_sweep(l, time(NULL), NJ_ADMIN_TEMP_MAX_AGE);
    nj_admin_sort(l);
    for (i = 0; i < l->n; i++) {
        nj_admin_file *f = &l->files[i];
        if (f->state == NJ_ADMIN_TEMP)
            continue;
        switch (nj_admin_verify(f)) {
        case NJ_ADMIN_GONE:
            gone++; /* removed by another process between the walk and the check */
            continue;
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
                    printf("; cannot remove it: %s", strerror(f->remove_errno));
                }
            }
            printf("\n");
            break;
        }
        checked++;
    }
    printf("verify: %zu %s checked: %zu valid, %zu corrupt", checked,
           plural(checked, "entry", "entries"), valid, corrupt);
    if (fix)
        printf(" (%zu removed)", removed);
    printf(", %zu stale; %zu temporary %s in progress\n", stale, count_temps(l),
           plural(count_temps(l), "file", "files"));
    if (gone)
        printf("%zu %s removed by another process while checking\n", gone,
               plural(gone, "entry was", "entries were"));
    print_sweep(swept);
    if (corrupt && !fix)
        printf("run 'normjit cache verify --fix' to remove the corrupt entries\n");
    fflush(stdout);
    if (report_problems("cache verify", l))
        failed = 1;
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
        nj_admin_human_size(file_bytes(f), size, sizeof size);
        nj_admin_human_age(f->st.st_mtim.tv_sec, now, age, sizeof age);
        if (nj_admin_remove(f) != 0) {
            failed = 1;
            printf("cannot remove ");
            put_safe(f->path);
            printf(": %s\n", strerror(f->remove_errno));
            continue;
        }
        removed++;
        removed_bytes += file_bytes(f);
        printf("removed ");
        describe(f);
        if (f->state == NJ_ADMIN_CORRUPT)
            printf(", %s", f->problem);
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
    fflush(stdout);
    free(order);
    if (report_problems("cache prune", l))
        failed = 1;
    return failed ? NJ_EXIT_FAIL : NJ_EXIT_OK;
}

static int cmd_clear(const char *root, nj_admin_listing *l)
{
    size_t swept, entries, temps, folders, left = 0, i;
    uint64_t bytes, left_bytes;
    char size[32];

    swept = nj_admin_sweep(l, time(NULL), NJ_ADMIN_TEMP_MAX_AGE);
    nj_admin_entry_bytes(l, &bytes);
    nj_admin_clear(root, l, &entries, &temps, &folders);
    nj_admin_entry_bytes(l, &left_bytes);
    nj_admin_human_size(bytes - left_bytes, size, sizeof size);
    printf("clear: removed %zu %s (%s), %zu temporary %s and %zu empty %s from ", entries,
           plural(entries, "entry", "entries"), size, temps, plural(temps, "file", "files"),
           folders, plural(folders, "folder", "folders"));
    put_safe(root);
    printf("\n");
    print_sweep(swept);
    fflush(stdout);
    for (i = 0; i < l->n; i++) {
        const nj_admin_file *f = &l->files[i];
        if (f->removed)
            continue;
        left++;
        fprintf(stderr, "normjit cache clear: cannot remove ");
        put_safe_to(stderr, f->path);
        fprintf(stderr, ": %s\n", strerror(f->remove_errno));
    }
    if (left)
        fprintf(stderr, "normjit cache clear: %zu %s could not be removed\n", left,
                plural(left, "file", "files"));
    return report_problems("cache clear", l) || left ? NJ_EXIT_FAIL : NJ_EXIT_OK;
}

int nj_cmd_cache(int argc, char **argv)
{
    static const struct option opts[] = {{"cache-dir", required_argument, NULL, 'c'},
                                         {"fix", no_argument, NULL, 'f'},
                                         {"json", no_argument, NULL, 'J'},
                                         {"max-size", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *cache_dir = NULL, *name;
    char *root = NULL, why[PATH_MAX + 256], err[256];
    uint64_t max_size = 0;
    struct stat st;
    int cmd, c, fix = 0, json = 0, have_max = 0, exists, trusted, status, rc;
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
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cache_dir = optarg;
            break;
        case 'f':
            if (cmd != CMD_VERIFY)
                return nj_usage_error(name, "--fix goes with 'cache verify'");
            fix = 1;
            break;
        case 'J':
            if (cmd != CMD_LIST)
                return nj_usage_error(name, "--json goes with 'cache list'");
            json = 1;
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
            nj_parse_option_problem(c, optopt, argv[optind - 1], err, sizeof err);
            return nj_usage_error(name, "%s", err);
        }
    }
    if (optind < argc)
        return nj_usage_error(name, "unexpected argument '%s'", argv[optind]);
    if (cmd == CMD_PRUNE && !have_max)
        return nj_usage_error(name, "--max-size SIZE is required");

    if ((status = nj_disk_cache_resolve(cache_dir, &root)) != NORMJIT_OK)
        return nj_report_failure(name, status);
    trusted = nj_admin_check_root(root, &exists, why, sizeof why) == 0;
    /* A refused directory can still be listed; a file or a dangling link has nothing to list. */
    if (!trusted && (cmd != CMD_LIST || stat(root, &st) != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "normjit %s: %s%s\n", name,
                cmd == CMD_LIST ? "" : "refusing to touch the cache: ", why);
        free(root);
        return NJ_EXIT_FAIL;
    }
    if (nj_admin_collect(root, cmd == CMD_LIST || cmd == CMD_PRUNE, &l) != 0) {
        fprintf(stderr, "normjit %s: cannot read %s: %s\n", name, root, strerror(errno));
        free(root);
        return NJ_EXIT_FAIL;
    }
    switch (cmd) {
    case CMD_LIST:
        rc = cmd_list(root, trusted, exists, trusted ? NULL : why, json, &l);
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
