/*
 * Helpers of the reliability tests: the normjit tool run as a child process,
 * a fresh temporary directory, and looking at a cache directory's files.
 */
#ifndef NJ_RELUTIL_H
#define NJ_RELUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The tool's path (the test's first argument) and the test's temporary directory. */
extern const char *rel_tool;
extern char rel_tmp[64];

/*
 * Make a fresh temporary directory for `name` and point every variable that
 * could reach the user's own cache or tuning tables into it. 0 on success.
 */
int rel_setup(const char *name);
/* Remove the temporary directory and everything in it. */
int rel_teardown(void);

/* Remove a tree (no links followed); a missing path is fine. */
int rel_rm_rf(const char *path);

/*
 * A child that runs longer than this is ended by SIGALRM (its status is then
 * 128 + SIGALRM): a hang fails the test instead of stalling it.
 */
#define REL_CHILD_TIMEOUT 240

/* Run the tool with `args` (NULL-terminated, without argv[0]); stdout and stderr go to *out. */
int rel_run(const char *const *args, char **out);

/* The status of rel_run_as when the child could not become the user asked for. */
#define REL_NOT_THAT_USER 126

/* Run the tool as user `uid` (and group `uid`) when `uid` is not -1. */
int rel_run_as(int uid, const char *const *args, char **out);

/* Run it, fail the test unless it exits with `status`; returns the output (free it). */
char *rel_expect(int status, const char *const *args);

/* Start the tool with its output to `log` (appended); returns the pid. */
pid_t rel_spawn(const char *const *args, const char *log);

/* Wait for `pid`: its exit status, or 128 + signal. */
int rel_wait(pid_t pid);

/* The whole of a file, NUL-terminated (NULL when it cannot be read). */
char *rel_slurp(const char *path);

/* Entries (*.njc) and temporary files under a cache root. */
void rel_count(const char *root, size_t *entries, size_t *temps);

/* Paths of the entries (is_temp 0) or temporary files (1), sorted; a NULL-terminated array. */
char **rel_paths(const char *root, int is_temp);
void rel_free_paths(char **paths);

/* Set a file's mtime (and atime) to `seconds_ago` before now. */
void rel_age(const char *path, long seconds_ago);

/* The kernel count of a warm's summary line ("warm: N kernels ..."), or -1. */
long rel_warm_kernels(const char *out, unsigned *compiled, unsigned *cached);

/* 1 if `hay` contains every string of the NULL-terminated `needles`; else fails the test. */
void rel_expect_all(const char *hay, const char *const *needles, const char *what);

/* Occurrences of `needle` in `hay`. */
size_t rel_count_str(const char *hay, const char *needle);

/* A small deterministic generator (splitmix64). */
uint64_t rel_rand(uint64_t *state);

#endif
