/*
 * Writers racing on one cache directory, through the normjit tool: eight
 * identical warms at once must all succeed and leave exactly one valid entry
 * per kernel and no temporary file; writers SIGKILLed at random moments must
 * leave only complete entries (temporary files are allowed, and are swept
 * once older than an hour), and a later warm completes the set.
 */
#include "cache_admin.h"
#include "relutil.h"
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define N_WARMS 8
#define KILL_ROUNDS 6
#define KILL_WRITERS 4
#define KILL_MAX_MS 300
#define FIRST_FILE_WAIT_S 20.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until(double t)
{
    double left = t - now_s();
    if (left > 0) {
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* Entries and temporary files in the cache. */
static size_t files_in(const char *dir)
{
    size_t entries, temps;
    rel_count(dir, &entries, &temps);
    return entries + temps;
}

/* The library's own complete check of every entry: how many valid, and fail on any other. */
static size_t verify_directly(const char *dir)
{
    nj_admin_listing l;
    size_t i, valid = 0;
    assert_int_equal(nj_admin_collect(dir, 0, &l), 0);
    for (i = 0; i < l.n; i++) {
        nj_admin_file *f = &l.files[i];
        if (f->state == NJ_ADMIN_TEMP)
            continue;
        if (nj_admin_verify(f) != NJ_ADMIN_OK)
            fail_msg("%s: %s %s", f->path, f->problem ? f->problem : "stale", f->detail);
        assert_true(f->key.has_variant);
        valid++;
    }
    nj_admin_listing_free(&l);
    return valid;
}

/* `normjit cache verify` finds `entries` valid entries and nothing wrong. */
static void cli_verify(const char *dir, size_t entries, size_t swept)
{
    const char *const args[] = {"cache", "verify", "--cache-dir", dir, NULL};
    char *out = rel_expect(0, args), expect[128];
    snprintf(expect, sizeof expect, "%zu %s checked: %zu valid, 0 corrupt", entries,
             entries == 1 ? "entry" : "entries", entries);
    if (!strstr(out, expect))
        fail_msg("expected \"%s\" in:\n%s", expect, out);
    snprintf(expect, sizeof expect, "swept %zu stale temporary file", swept);
    if (!strstr(out, expect))
        fail_msg("expected \"%s\" in:\n%s", expect, out);
    free(out);
}

static void test_eight_concurrent_warms(void **state)
{
    char dir[128], log[N_WARMS][160];
    const char *args[] = {"warm", "--arch", "sm_90", "--op", "rmsnorm,layernorm", "--dtype",
                          "f16,bf16,f32", "--hidden", "1024,2880,4096,8192", "-j", "2",
                          "--cache-dir", dir, NULL};
    pid_t pids[N_WARMS];
    long kernels = -1;
    unsigned compiled, cached, total_compiled = 0;
    size_t entries, temps;
    double t0 = now_s();
    char *out;
    int i;
    (void)state;

    snprintf(dir, sizeof dir, "%s/eight", rel_tmp);
    for (i = 0; i < N_WARMS; i++) {
        snprintf(log[i], sizeof log[i], "%s/warm-%d.log", rel_tmp, i);
        pids[i] = rel_spawn(args, log[i]);
    }
    for (i = 0; i < N_WARMS; i++) {
        int status = rel_wait(pids[i]);
        char *text = rel_slurp(log[i]);
        long k = text ? rel_warm_kernels(text, &compiled, &cached) : -1;
        if (status != 0 || k < 0)
            fail_msg("warm %d exited %d; output:\n%s", i, status, text ? text : "(none)");
        if (kernels < 0)
            kernels = k;
        if (k != kernels)
            fail_msg("warm %d prepared %ld kernels, warm 0 %ld; output:\n%s", i, k, kernels,
                     text);
        if (strstr(text, "warning") || strstr(text, "FAILED"))
            fail_msg("warm %d warned:\n%s", i, text);
        total_compiled += compiled;
        free(text);
    }
    print_message("%d concurrent warms of %ld kernels (24 combinations) in %.1f s; %u "
                  "compilations in all\n",
                  N_WARMS, kernels, now_s() - t0, total_compiled);
    assert_true(kernels >= 24);
    assert_true(total_compiled >= (unsigned)kernels);

    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, (size_t)kernels); /* one file per kernel */
    assert_int_equal(temps, 0);                 /* every writer renamed or removed its own */
    cli_verify(dir, entries, 0);
    assert_int_equal(verify_directly(dir), entries);

    /* And the library loads every one of them. */
    out = rel_expect(0, args);
    assert_int_equal(rel_warm_kernels(out, &compiled, &cached), kernels);
    assert_int_equal(compiled, 0);
    assert_int_equal(cached, (unsigned)kernels);
    free(out);
}

static void test_killed_writers(void **state)
{
    char dir[128], log[160], young[512];
    const char *args[] = {"warm", "--arch", "sm_90", "--op", "rmsnorm,layernorm", "--dtype",
                          "f16,bf16", "--hidden", "768,1536,2304,3072,5120,6144,7168,12288", "-j",
                          "2", "--cache-dir", dir, NULL};
    uint64_t rng = nj_test_seed();
    size_t entries = 0, temps = 0, aged;
    unsigned compiled, cached;
    long kernels;
    char **paths, *out;
    int round, w;
    double t0 = now_s();
    (void)state;

    snprintf(dir, sizeof dir, "%s/killed", rel_tmp);
    snprintf(log, sizeof log, "%s/killed.log", rel_tmp);
    for (round = 0; round < KILL_ROUNDS; round++) {
        pid_t pids[KILL_WRITERS];
        int delay_ms[KILL_WRITERS], order[KILL_WRITERS], killed = 0;
        size_t before;
        char delays[KILL_WRITERS * 8];
        double start;
        for (w = 0; w < KILL_WRITERS; w++) {
            delay_ms[w] = (int)(rel_rand(&rng) % (KILL_MAX_MS + 1));
            order[w] = w;
        }
        /* Kill in order of delay. */
        for (w = 1; w < KILL_WRITERS; w++) {
            int x = order[w], j = w;
            for (; j > 0 && delay_ms[order[j - 1]] > delay_ms[x]; j--)
                order[j] = order[j - 1];
            order[j] = x;
        }
        /*
         * The writers start at once; the kill delays count from the round's
         * first new file in the cache (an entry or a temporary file), so that
         * they land while the writers are storing, not while NVRTC starts.
         */
        before = files_in(dir);
        for (w = 0; w < KILL_WRITERS; w++)
            pids[w] = rel_spawn(args, log);
        start = now_s();
        while (files_in(dir) == before && now_s() - start < FIRST_FILE_WAIT_S) {
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        start = now_s();
        for (w = 0; w < KILL_WRITERS; w++) {
            int k = order[w];
            sleep_until(start + delay_ms[k] / 1000.0);
            kill(pids[k], SIGKILL);
        }
        for (w = 0; w < KILL_WRITERS; w++) {
            int status = rel_wait(pids[w]);
            if (status == 128 + SIGKILL)
                killed++;
            else if (status != 0)
                fail_msg("writer exited %d (not killed); log %s", status, log);
        }
        rel_count(dir, &entries, &temps);
        delays[0] = '\0';
        for (w = 0; w < KILL_WRITERS; w++)
            snprintf(delays + strlen(delays), sizeof delays - strlen(delays), "%s%d",
                     w ? "/" : "", delay_ms[w]);
        print_message("round %d: kills %s ms after the first new file, %d killed: %zu "
                      "entr%s, %zu temporary file(s)\n",
                      round, delays, killed, entries, entries == 1 ? "y" : "ies", temps);
        /* Complete entries or none: every entry present is valid. */
        cli_verify(dir, entries, 0);
        assert_int_equal(verify_directly(dir), entries);
    }

    /*
     * Temporary files of killed writers may stay; they are swept only once
     * older than an hour. Without any (the kills missed every write), stand in
     * one half-written like a writer's.
     */
    paths = rel_paths(dir, 1);
    for (aged = 0; paths[aged]; aged++)
        rel_age(paths[aged], 2 * 3600);
    rel_free_paths(paths);
    if (aged == 0) {
        FILE *f;
        char half[512];
        paths = rel_paths(dir, 0);
        if (paths[0]) {
            snprintf(half, sizeof half, "%s.tmp.KILLED", paths[0]);
            f = fopen(half, "wb");
            assert_non_null(f);
            fputs("NJCACHE half an entry", f);
            fclose(f);
            rel_age(half, 2 * 3600);
            aged = 1;
            print_message("no temporary file left by the kills: one stands in\n");
        }
        rel_free_paths(paths);
    }
    young[0] = '\0';
    paths = rel_paths(dir, 0);
    if (paths[0]) {
        FILE *f;
        snprintf(young, sizeof young, "%s.tmp.YOUNG1", paths[0]);
        f = fopen(young, "wb");
        assert_non_null(f);
        fclose(f);
    }
    rel_free_paths(paths);
    cli_verify(dir, entries, aged);
    rel_count(dir, &entries, &temps);
    assert_int_equal(temps, young[0] ? 1 : 0); /* the young one stays: a writer may be at work */
    if (young[0]) {
        rel_age(young, 3600 + 60);
        cli_verify(dir, entries, 1);
        rel_count(dir, &entries, &temps);
        assert_int_equal(temps, 0);
    }

    /* A normal warm loads every entry left (each complete) and compiles the rest. */
    out = rel_expect(0, args);
    kernels = rel_warm_kernels(out, &compiled, &cached);
    if (kernels < 32 || cached != entries || compiled + cached != (unsigned)kernels)
        fail_msg("expected %zu of the kernels cached; output:\n%s", entries, out);
    free(out);
    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, (size_t)kernels);
    assert_int_equal(temps, 0);
    cli_verify(dir, entries, 0);
    assert_int_equal(verify_directly(dir), entries);
    print_message("%d rounds of %d killed writers, then a full warm of %ld kernels, in %.1f s\n",
                  KILL_ROUNDS, KILL_WRITERS, kernels, now_s() - t0);
}

static int setup(void **state)
{
    (void)state;
    nj_test_seed_banner("test_concurrent_warm");
    return rel_setup("test-concurrent-warm");
}

static int teardown(void **state)
{
    (void)state;
    return rel_teardown();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eight_concurrent_warms),
        cmocka_unit_test(test_killed_writers),
    };
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s PATH-TO-normjit [TEST-NAME-PATTERN]\n", argv[0]);
        return 2;
    }
    rel_tool = argv[1];
    if (argc == 3)
        cmocka_set_test_filter(argv[2]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
