/*
 * Administering a kernel cache directory (normjit cache list | verify | prune
 * | clear): collect every entry and temporary file, summarize or fully check
 * each entry, sweep temporary files that a dead writer left, remove least
 * recently used entries, remove everything.
 *
 * Nothing here trusts an entry: headers are checked against the file size,
 * the key text is parsed with bounds and only known names are accepted, and
 * only files with normjit's names (*.njc and *.njc.tmp.* inside
 * v<N>/<target>/<xx>/) are ever removed: a link or a FIFO with such a name is
 * removed itself (never what a link points at), a folder only when empty.
 * The tree is walked with the library's rules (cache_scan.h); what the walk
 * refuses or cannot read is kept in the listing's problems, and an entry
 * removed by someone else meanwhile is GONE, not corrupt.
 */
#ifndef NJ_CACHE_ADMIN_H
#define NJ_CACHE_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

/*
 * Temporary files whose mtime is further than this from now belong to a
 * writer that died (older), or carry a date no writer at work gives them
 * (in the future).
 */
#define NJ_ADMIN_TEMP_MAX_AGE 3600

/* What the key text of an entry says, parsed with bounds ("?" / 0 when absent). */
typedef struct nj_key_info {
    int has_variant;  /* op, x, y, w and hidden all present and valid */
    char op[16];      /* "rmsnorm", "add_layernorm", ... */
    char x[8], y[8], w[8];
    long long hidden;
    char knobs[128];  /* "v8 t128 r1 c1 o0 reg", then the epilogue ("r=bf16,q=token"), or "?" */
    char target[24];  /* "sm_90", "compute_90", or "" */
    int schema;       /* the "schema:" line, 0 when absent */
} nj_key_info;

/*
 * Parse the "schema:", "target:" and "variant:" lines of a key text of
 * `len` bytes (need not be NUL-terminated; never read past `len`). Returns 1
 * when the variant line was understood (info->has_variant), else 0.
 */
int nj_key_info_parse(const char *key, size_t len, nj_key_info *info);

/* State of one file after nj_admin_collect (header summary) or nj_admin_verify (full check). */
enum {
    NJ_ADMIN_OK = 0,  /* entry of this schema whose check passed */
    NJ_ADMIN_CORRUPT, /* entry of this schema that the library would not load */
    NJ_ADMIN_STALE,   /* entry in another schema's folder (v1/ ...) */
    NJ_ADMIN_TEMP,    /* a writer's temporary file */
    NJ_ADMIN_GONE     /* removed by someone else between the walk and the check */
};

typedef struct nj_admin_file {
    char *path;        /* full path */
    char target[24];   /* the target folder: "sm_90" */
    char bucket[8];    /* the bucket folder: first two digest digits */
    char digest[33];   /* from the file name, "" when the name is not <32 hex digits>.njc */
    int schema;        /* from the v<N> folder */
    int state;         /* NJ_ADMIN_* */
    const char *problem; /* why CORRUPT, else NULL (static text) */
    char detail[96];   /* more about the problem, may be "" */
    nj_key_info key;   /* valid when key.has_variant */
    struct stat st;    /* lstat at the walk, then fstat of the file checked */
    int unreadable;    /* CORRUPT because it could not be opened or read (EACCES, EIO) */
    int removed;       /* set by the removing functions */
    int remove_errno;  /* why the last nj_admin_remove failed */
} nj_admin_file;

/* Something the walk refused or could not read (a folder link, an unreadable folder). */
typedef struct nj_admin_problem {
    char *path;
    char why[128];
} nj_admin_problem;

typedef struct nj_admin_listing {
    nj_admin_file *files; /* entries and temporary files, in directory order until sorted */
    size_t n, cap;
    nj_admin_problem *problems;
    size_t n_problems, cap_problems;
} nj_admin_listing;

/*
 * Check the cache root with the library's rule (nj_disk_root_check): 0 when
 * it is usable (trusted; *exists says whether it exists at all), -1 when it
 * is not, with the reason in `why`.
 */
int nj_admin_check_root(const char *root, int *exists, char *why, size_t why_size);

/*
 * Collect every entry and temporary file under `root` (with the lstat of
 * each). With `headers`, each current-schema entry's header and key are read
 * and checked (not the payload): state OK with key info, or CORRUPT with the
 * problem; without, such entries are OK until nj_admin_verify says otherwise.
 * Entries of other schemas are STALE, temporary files TEMP, entries removed
 * meanwhile GONE; anything with an entry's name that is not a regular file
 * is CORRUPT. Folders the walk refuses or cannot read go to out->problems. A
 * missing root gives an empty listing. 0 on success, -1 with errno.
 */
int nj_admin_collect(const char *root, int headers, nj_admin_listing *out);
void nj_admin_listing_free(nj_admin_listing *l);

/* Sort for listing: entries by op, dtypes, hidden, target, digest; then corrupt, stale, temporary. */
void nj_admin_sort(nj_admin_listing *l);

/*
 * Check one entry completely, as the library would before loading it, and
 * more: the file is a regular file of this user that only this user can
 * write, nj_entry_parse accepts it, its name is the digest of its key text,
 * and it sits in the folder of its key's target and its digest's first two
 * digits. Sets f->state (OK, CORRUPT or STALE), f->problem, f->detail and
 * f->key. Returns f->state.
 */
int nj_admin_verify(nj_admin_file *f);

/*
 * Remove one file (a folder with an entry's name only when empty), unless
 * the path now names another file than the one collected (a writer replaced
 * it meanwhile). 0 on success (or already gone), -1 with errno, also kept in
 * f->remove_errno.
 */
int nj_admin_remove(nj_admin_file *f);

/*
 * Remove the temporary files whose mtime is more than `max_age` seconds
 * before or after `now`. Returns how many were removed.
 */
size_t nj_admin_sweep(nj_admin_listing *l, time_t now, long max_age);

/*
 * Corrupt entries first, then the least recently used (by mtime, oldest
 * first; ties by path): fill `order` (room for l->n) with the indexes of the
 * entries (not temporary files, not gone or removed) to remove so that the
 * remaining entries total at most `max_bytes`. Returns how many (0 also when
 * out of memory).
 */
size_t nj_admin_prune_plan(const nj_admin_listing *l, uint64_t max_bytes, size_t *order);

/* Remove every file of the listing, then the folders under `root` left empty. */
void nj_admin_clear(const char *root, nj_admin_listing *l, size_t *entries, size_t *temps,
                    size_t *folders);

/* Entries (not temporary, not gone or removed) and their total size (regular files only). */
size_t nj_admin_entry_bytes(const nj_admin_listing *l, uint64_t *bytes);

/* "512 B", "24.1 KiB", "3.0 MiB". */
void nj_admin_human_size(uint64_t bytes, char *out, size_t size);

/* Age of `mtime` at `now`: "42s", "3m", "2h", "5d". */
void nj_admin_human_age(time_t mtime, time_t now, char *out, size_t size);

#endif
