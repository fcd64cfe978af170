/*
 * The cost of a cached call, on the CPU with a fake driver: after the first
 * call of a shape, 100 000 further calls make no heap allocation (the heap's
 * in-use bytes and block count do not move), load no module, compile
 * nothing, and launch exactly once each. The GPU load test measures the same
 * process-wide on a real GPU, where the driver's own memory adds noise.
 */
#include "ctx.h"
#include "fake_driver.h"
#include "fake_nvrtc.h"

#include <malloc.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define CALLS 100000

static void test_cached_calls_allocate_nothing(void **state)
{
    nj_driver drv;
    nj_nvrtc nvrtc;
    normjit_ctx_options o;
    normjit_ctx *ctx = NULL;
    normjit_norm_args a;
    struct mallinfo2 before, after;
    int i, loads, compiles;
    (void)state;

    fake_driver_init(&drv);
    fake_nvrtc_init(&nvrtc);
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.flags = NORMJIT_CTX_NO_DISK_CACHE;
    assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_OK);

    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = 512;
    a.hidden = 4096;
    a.x = (const void *)(uintptr_t)0x100000;
    a.y = (void *)(uintptr_t)0x900000;
    a.weight = (const void *)(uintptr_t)0x1100000;
    a.x_dtype = a.y_dtype = a.weight_dtype = NORMJIT_DTYPE_BF16;
    a.eps = 1e-6f;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK); /* compiles and loads */
    loads = fake_drv.module_loads;
    compiles = fake_nv.compiles;

    before = mallinfo2();
    for (i = 0; i < CALLS; i++)
        if (normjit_rmsnorm_fwd(ctx, &a, NULL) != NORMJIT_OK)
            fail_msg("call %d failed: %s", i, normjit_last_error());
    after = mallinfo2();

    assert_int_equal(after.uordblks, before.uordblks);
    assert_int_equal(after.hblkhd, before.hblkhd);
    assert_int_equal(fake_drv.module_loads, loads);
    assert_int_equal(fake_nv.compiles, compiles);
    assert_int_equal(fake_drv.launches, CALLS + 1);
    normjit_ctx_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cached_calls_allocate_nothing)};
    return cmocka_run_group_tests_name("hot path", tests, NULL, NULL);
}
