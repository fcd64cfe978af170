#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t nj_test_seed(void)
{
    static uint64_t seed;
    const char *env;
    if (seed)
        return seed;
    env = getenv("NORMJIT_TEST_SEED");
    if (env && *env)
        seed = strtoull(env, NULL, 0);
    else
        seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() << 32;
    if (!seed)
        seed = 1;
    return seed;
}

void nj_test_seed_banner(const char *suite)
{
    printf("# %s: random seed %llu (rerun with NORMJIT_TEST_SEED=%llu)\n", suite,
           (unsigned long long)nj_test_seed(), (unsigned long long)nj_test_seed());
    fflush(stdout);
}


double nj_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int nj_test_quick(void)
{
    const char *q = getenv("NORMJIT_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}
