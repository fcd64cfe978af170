/* Where per-user files live: one rule for the kernel cache and the tuning tables. */
#ifndef NJ_PATHS_H
#define NJ_PATHS_H

/*
 * The directory `explicit_dir` if not NULL or empty; else $<override_env> if
 * set and not empty; else
 * $<xdg_env>/<xdg_suffix> if that variable holds an absolute path; else
 * <home>/<home_suffix>, where home is $HOME or the user's password entry.
 * A relative path is made absolute against the working directory. The
 * caller frees *out. NORMJIT_EIO naming `override_env` when there is no home.
 */
int nj_user_path(const char *explicit_dir, const char *override_env, const char *xdg_env, const char *xdg_suffix,
                 const char *home_suffix, char **out);

#endif
