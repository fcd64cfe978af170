/*
 * The normjit command-line tool, run as a child process (its path is the
 * test's first argument): exit statuses, help, and a compile-only warm of
 * the disk cache that a second run finds complete.
 */
#include "cache_scan.h"
#include "args.h"
#include "ctx.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static const char *tool;
static char tmp_dir[] = "/tmp/normjit-test-tool-XXXXXX";
static char cache_dir[sizeof tmp_dir + 16];

/* Run the tool with `args` (NULL-terminated, without argv[0]); stdout and stderr go to *out. */
static int run_tool(const char *const *args, char **out)
{
    const char *argv[32];
    int fds[2], status, n = 0;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    pid_t pid;

    assert_non_null(buf);
    argv[n++] = tool;
    while (*args && n < 31)
        argv[n++] = *args++;
    argv[n] = NULL;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(tool, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        ssize_t got;
        if (len + 1 == cap) {
            buf = realloc(buf, cap *= 2);
            assert_non_null(buf);
        }
        got = read(fds[0], buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    buf[len] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    *out = buf;
    if (!WIFEXITED(status))
        fail_msg("%s %s did not exit normally:\n%s", tool, argv[1] ? argv[1] : "", buf);
    return WEXITSTATUS(status);
}

/* Run and check the exit status, printing the output when it is wrong. */
static char *expect_exit(int status, const char *const *args)
{
    char *out;
    int got = run_tool(args, &out);
    if (got != status)
        fail_msg("normjit %s ... exited %d, expected %d; output:\n%s", args[0] ? args[0] : "",
                 got, status, out);
    return out;
}

static void test_exit_statuses(void **state)
{
    static const struct {
        int status;
        const char *args[8];
        const char *output; /* expected in the output */
    } cases[] = {
        {0, {"--help"}, "usage: normjit <command>"},
        {0, {"--version"}, "normjit " NORMJIT_VERSION_STRING},
        {2, {NULL}, "usage: normjit <command>"},
        {2, {"nosuchcmd"}, "unknown command 'nosuchcmd'"},
        {0, {"info", "--help"}, "usage: normjit info"},
        {0, {"warm", "--help"}, "usage: normjit warm"},
        {0, {"tune", "--help"}, "usage: normjit tune"},
        {0, {"bench", "--help"}, "usage: normjit bench"},
        {2, {"warm", "--bogus"}, "(see 'normjit warm --help')"},
        {2, {"warm", "--arch", "sm_5"}, "--arch: 'sm_5' is not an architecture"},
        {2, {"warm", "--arch", "sm_75"}, "sm_75 is older than sm_80"},
        {2, {"warm", "--arch", "sm_90", "--op", "softmax"}, "unknown op 'softmax'"},
        {2, {"warm", "--arch", "sm_90", "--dtype", "f64"}, "unknown dtype 'f64'"},
        {2, {"warm", "--arch", "sm_90", "--hidden", "0"}, "--hidden: 0 is outside"},
        {2, {"warm", "--arch", "sm_90", "-j", "0"}, "--jobs"},
        {2, {"warm", "stray"}, "unexpected argument 'stray'"},
        {2, {"info", "--bogus"}, "(see 'normjit info --help')"},
        {2, {"info", "--json", "stray"}, "unexpected argument 'stray'"},
        {2, {"bench", "--shape", "4096"}, "is not a shape"},
        {2, {"tune", "--arch", "sm_90"}, "--arch goes with --compile-only"},
        {2, {"warm", "--arch", "sm_90", "--quant", "fp4-token"}, "unknown quant 'fp4-token'"},
        {2, {"warm", "--arch", "sm_90", "--cast", "phi"}, "unknown cast 'phi'"},
        {2, {"warm", "--arch", "sm_90", "--dtype", "fp8e4m3"}, "quantized outputs go with --quant"},
        {2, {"bench", "--quant", "fp8"}, "unknown quant 'fp8'"},
        {1, {"warm", "--arch", "sm_90", "--config", "/nonexistent/config.json"},
         "/nonexistent/config.json"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = expect_exit(cases[i].status, cases[i].args);
        if (!strstr(out, cases[i].output))
            fail_msg("normjit %s: output lacks \"%s\":\n%s",
                     cases[i].args[0] ? cases[i].args[0] : "", cases[i].output, out);
        free(out);
    }
}

/* The "warm: N kernels ...: C compiled, D already cached" summary, parsed. */
/* noinline: GCC 12 otherwise reports a false dangling-pointer warning for `line`. */
__attribute__((noinline)) static void summary(const char *out, unsigned *kernels, unsigned *compiled,
                                               unsigned *cached)
{
    const char *line = strstr(out, "warm: ");
    int arch = 0;
    double seconds = 0;
    if (!line || sscanf(line, "warm: %u kernels for sm_%d in %lf s: %u compiled, %u already cached",
                        kernels, &arch, &seconds, compiled, cached) != 5)
        fail_msg("no summary line in:\n%s", out);
    assert_int_equal(arch, 90);
}

static int tally(const nj_cache_file *f, void *user)
{
    int *counts = user;
    counts[f->is_temp]++;
    return 0;
}

/*
 * The kernels a warm of these combinations must produce: for each, the
 * distinct plans a launch may use on a GPU of that architecture (one from
 * the heuristic, plus those of any shipped tuning table for it), over the
 * row-count buckets, for 16-byte aligned tensors.
 */
static unsigned expected_kernels(int arch, const int *ops, int n_ops, const int *dtypes,
                                 int n_dtypes, const int64_t *hidden, int n_hidden)
{
    normjit_ctx_options o;
    normjit_ctx *ctx = NULL;
    unsigned total = 0;
    int i, d, h, b, p, q;

    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.flags = NORMJIT_CTX_NO_DISK_CACHE;
    o.offline_arch = arch;
    o.log_level = NORMJIT_LOG_WARN;
    assert_int_equal(nj_ctx_create_with(&ctx, &o, NULL, NULL), NORMJIT_OK);
    for (i = 0; i < n_ops; i++)
        for (d = 0; d < n_dtypes; d++)
            for (h = 0; h < n_hidden; h++) {
                nj_variant seen[NJ_BUCKETS * 8];
                int n_seen = 0;
                for (b = 0; b < NJ_BUCKETS; b++) {
                    nj_request r;
                    nj_plan plans[8];
                    int n;
                    memset(&r, 0, sizeof r);
                    r.s.op = ops[i];
                    r.s.tx = r.s.ty = r.s.tw = dtypes[d];
                    r.s.hidden = hidden[h];
                    r.bucket = b;
                    r.vec = nj_widest_vec(&r.s);
                    n = nj_planner_plans_for_arch(&ctx->planner, &r, plans, 8);
                    assert_true(n >= 1);
                    for (p = 0; p < n; p++) {
                        for (q = 0; q < n_seen && !nj_variant_equal(&seen[q], &plans[p].v); q++)
                            ;
                        if (q == n_seen)
                            seen[n_seen++] = plans[p].v;
                    }
                }
                total += (unsigned)n_seen;
            }
    normjit_ctx_destroy(ctx);
    return total;
}

static void test_warm_then_warm_again(void **state)
{
    static const int ops[] = {NORMJIT_OP_RMSNORM, NORMJIT_OP_LAYERNORM};
    static const int dtypes[] = {NORMJIT_DTYPE_F16, NORMJIT_DTYPE_BF16, NORMJIT_DTYPE_F32};
    static const int64_t hidden[] = {1024, 2880, 4096, 8192};
    const char *const warm[] = {"warm", "--arch", "sm_90", "--op", "rmsnorm,layernorm",
                                "--dtype", "f16,bf16,f32", "--hidden", "1024,2880,4096,8192",
                                "--cache-dir", cache_dir, "-j", "2", NULL};
    const char *const info[] = {"info", "--cache-dir", cache_dir, NULL};
    const unsigned expect = expected_kernels(90, ops, 2, dtypes, 3, hidden, 4);
    unsigned kernels, compiled, cached;
    int counts[2] = {0, 0};
    char *out, entries[32];
    (void)state;

    /* 24 combinations: at least one kernel each, exactly one without a shipped sm_90 table. */
    assert_true(expect >= 24);
    print_message("expecting %u kernels for the 24 combinations\n", expect);

    out = expect_exit(0, warm);
    summary(out, &kernels, &compiled, &cached);
    assert_int_equal(kernels, expect);
    assert_int_equal(compiled, expect);
    assert_int_equal(cached, 0);
    assert_null(strstr(out, "FAILED"));
    free(out);

    assert_int_equal(nj_cache_scan(cache_dir, tally, counts), 0);
    assert_int_equal(counts[0], expect);
    assert_int_equal(counts[1], 0); /* no temporary files left */

    out = expect_exit(0, warm);
    summary(out, &kernels, &compiled, &cached);
    assert_int_equal(kernels, expect);
    assert_int_equal(compiled, 0);
    assert_int_equal(cached, expect);
    free(out);

    out = expect_exit(0, info);
    snprintf(entries, sizeof entries, ": %u entries,", expect);
    if (!strstr(out, entries))
        fail_msg("info does not count %u entries:\n%s", expect, out);
    assert_non_null(strstr(out, cache_dir));
    free(out);
}

/*
 * Check JSON printed by the tool with python3: `check` is a Python expression
 * over the parsed object `d` and the strings `want` (the NULL-terminated
 * `values`); on failure the object is printed.
 */
static void check_json(const char *json, const char *check, const char *const *values)
{
    static const char script[] =
        "import json, sys\n"
        "d = json.load(open(sys.argv[1], encoding='utf-8'))\n"
        "want = sys.argv[3:]\n"
        "if not eval(sys.argv[2]):\n"
        "    sys.exit('fails: %s\\n%s' % (sys.argv[2], json.dumps(d, indent=2)))\n";
    const char *argv[16] = {"python3", "-c", script, NULL, check};
    char path[sizeof tmp_dir + 16];
    int n = 5, status;
    FILE *f;
    pid_t pid;

    snprintf(path, sizeof path, "%s/out.json", tmp_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    assert_int_equal(fclose(f), 0);
    argv[3] = path;
    while (*values && n < 15)
        argv[n++] = *values++;
    argv[n] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("info --json: check failed (python3 exit %d) on:\n%s", WEXITSTATUS(status), json);
}

/*
 * info --json without a driver: the same facts as the text, as one JSON
 * object. Runs after the warm test, so the cache holds entries to count;
 * a cache path with quotes, a backslash and a byte that is not UTF-8 still
 * gives valid JSON; a cache others may write is reported refused.
 */
static void test_info_json(void **state)
{
    char entries[32], odd[sizeof tmp_dir + 32], odd_escaped[sizeof odd + 8];
    char open_dir[sizeof tmp_dir + 16];
    int counts[2] = {0, 0};
    char *out;
    (void)state;

    setenv("NORMJIT_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1); /* no driver, on any machine */
    assert_int_equal(nj_cache_scan(cache_dir, tally, counts), 0);
    snprintf(entries, sizeof entries, "%d", counts[0]);
    {
        const char *const args[] = {"info", "--json", "--cache-dir", cache_dir, NULL};
        const char *const want[] = {NORMJIT_VERSION_STRING, cache_dir, entries, NULL};
        out = expect_exit(0, args);
        check_json(out,
                   "d['version'] == want[0]"
                   " and d['kernels']['available'] is True and len(d['kernels']['digest']) == 32"
                   " and d['nvrtc']['available'] is True and 'sm_90' in d['nvrtc']['archs']"
                   " and d['driver']['available'] is False"
                   " and '/nonexistent/libcuda.so.1' in d['driver']['error']"
                   " and d['gpus'] == []"
                   " and d['cache'] == {'state': 'ready', 'dir': want[1], 'entries': int(want[2]),"
                   "   'bytes': d['cache']['bytes'], 'temporary_files': 0, 'folders_not_inspected': 0, 'writable': True}"
                   " and d['cache']['bytes'] > 0",
                   want);
        free(out);
    }

    snprintf(odd, sizeof odd, "%s/we\"ird\\dir\xff", tmp_dir);
    snprintf(odd_escaped, sizeof odd_escaped, "%s/we\"ird\\dir\xef\xbf\xbd", tmp_dir); /* U+FFFD */
    {
        const char *const args[] = {"info", "--json", "--cache-dir", odd, NULL};
        const char *const want[] = {odd_escaped, NULL};
        out = expect_exit(0, args);
        check_json(out, "d['cache'] == {'state': 'not_created', 'dir': want[0]}", want);
        free(out);
    }

    snprintf(open_dir, sizeof open_dir, "%s/open", tmp_dir);
    assert_int_equal(mkdir(open_dir, 0700), 0);
    assert_int_equal(chmod(open_dir, 0777), 0);
    {
        const char *const args[] = {"info", "--json", "--cache-dir", open_dir, NULL};
        const char *const want[] = {open_dir, NULL};
        out = expect_exit(0, args);
        check_json(out,
                   "d['cache']['state'] == 'refused' and d['cache']['dir'] == want[0] and "
                   "'writable by group or others' in d['cache']['reason']",
                   want);
        free(out);
    }
    unsetenv("NORMJIT_CUDA_DRIVER");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/*
 * warm --config reads a HuggingFace config and warms exactly the norms that
 * model calls, with its dtype and cast mode; --quant adds quantized outputs
 * (never for QK-norm); malformed configs exit 1 naming the file and reason.
 */
static void test_warm_config(void **state)
{
    static const struct {
        const char *name, *json;
        int status;
        const char *output[4]; /* expected in the output */
        const char *absent;    /* must not be in the output */
    } cases[] = {
        {"llama.json",
         "{\"model_type\": \"llama\", \"hidden_size\": 2048, \"rms_norm_eps\": 1e-5, "
         "\"torch_dtype\": \"bfloat16\", \"num_attention_heads\": 32}",
         0, {"llama, bf16, 2 norms: rmsnorm 2048 (cast llama), add_rmsnorm 2048 (cast llama)",
             "rmsnorm bf16 fp8-token cast=llama hidden=2048"}, "qk_rmsnorm"},
        {"qwen3.json",
         "{\"model_type\": \"qwen3\", \"hidden_size\": 1024, \"num_attention_heads\": 16,"
         " \"head_dim\": 128, \"rms_norm_eps\": 1e-6, \"dtype\": \"bfloat16\"}",
         0, {"qk_rmsnorm 128 (cast llama)", "qk_rmsnorm bf16 cast=llama hidden=128"},
         "qk_rmsnorm bf16 fp8"},
        {"gemma3.json",
         "{\"model_type\": \"gemma3\", \"torch_dtype\": \"bfloat16\", \"text_config\": "
         "{\"model_type\": \"gemma3_text\", \"hidden_size\": 640, \"num_attention_heads\": 4,"
         " \"head_dim\": 256, \"rms_norm_eps\": 1e-6}}",
         0, {"gemma3_text, bf16, 3 norms", "rmsnorm 640 (cast gemma)", "qk_rmsnorm 256 (cast gemma)"},
         NULL},
        {"deepseek.json",
         "{\"model_type\": \"deepseek_v3\", \"hidden_size\": 1024, \"q_lora_rank\": 1536,"
         " \"kv_lora_rank\": 512, \"rms_norm_eps\": 1e-6, \"torch_dtype\": \"float16\"}",
         0, {"rmsnorm 1536 (cast llama)", "rmsnorm 512 (cast llama)", "f16"}, NULL},
        {"neox.json",
         "{\"model_type\": \"gpt_neox\", \"hidden_size\": 512, \"layer_norm_eps\": 1e-5,"
         " \"torch_dtype\": \"float16\"}",
         0, {"layernorm 512 (cast none)", "add_layernorm 512 (cast none)"}, NULL},
        {"nodtype.json", "{\"model_type\": \"llama\", \"hidden_size\": 512}", 1,
         {"names no dtype", "give --dtype"}, NULL},
        {"unknown.json", "{\"model_type\": \"mystery\", \"hidden_size\": 512}", 1,
         {"cannot tell the norm", "mystery"}, NULL},
        {"broken.json", "{\"hidden_size\": 512,\n \"rms_norm_eps\": }", 1,
         {"broken.json: line 2: expected a value"}, NULL},
        {"badsize.json", "{\"hidden_size\": -3, \"rms_norm_eps\": 1e-6}", 1,
         {"hidden_size is not a positive integer"}, NULL},
    };
    size_t i, k;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[sizeof tmp_dir + 32];
        const char *args[] = {"warm", "--arch", "sm_90", "-j", "2", "--config", path, "--quant",
                              "none,fp8-token", NULL};
        char *out;
        snprintf(path, sizeof path, "%s/%s", tmp_dir, cases[i].name);
        write_file(path, cases[i].json);
        out = expect_exit(cases[i].status, args);
        for (k = 0; k < 4 && cases[i].output[k]; k++)
            if (!strstr(out, cases[i].output[k]))
                fail_msg("%s: output lacks \"%s\":\n%s", cases[i].name, cases[i].output[k], out);
        if (cases[i].absent && strstr(out, cases[i].absent))
            fail_msg("%s: output has \"%s\":\n%s", cases[i].name, cases[i].absent, out);
        free(out);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmp_dir))
        return -1;
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", tmp_dir);
    /* Children inherit these: nothing may reach the user's own cache or tuning tables. */
    setenv("NORMJIT_CACHE_DIR", cache_dir, 1);
    setenv("NORMJIT_TUNING_DIR", tmp_dir, 1);
    unsetenv("NORMJIT_TUNING_FILE");
    unsetenv("NORMJIT_LOG");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_statuses),
        cmocka_unit_test(test_warm_then_warm_again),
        cmocka_unit_test(test_info_json), /* after the warm: counts its entries */
        cmocka_unit_test(test_warm_config),
    };
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-normjit\n", argv[0]);
        return 2;
    }
    tool = argv[1];
    return cmocka_run_group_tests(tests, setup, teardown);
}
