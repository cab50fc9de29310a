/* testutil.h - helpers shared by the cmocka tests (header-only: each test is one binary).
 *
 * expect_close compares two float tensors with an absolute + relative tolerance
 * (|a - b| <= atol + rtol * |b|) and, on failure, prints the worst element and its index.
 * test_rng is a small deterministic generator so tests need no global state.
 */
#ifndef XBN_TESTUTIL_H
#define XBN_TESTUTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <cmocka.h>

static inline int tensors_close(const float *got, const float *want, size_t n, double atol,
                                double rtol, const char *what)
{
    size_t worst = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]), lim = atol + rtol * fabs((double)want[i]);
        double excess = isnan(d) ? INFINITY : d - lim;
        if (excess > worst_excess) worst_excess = excess, worst = i;
    }
    if (n && worst_excess > 0) {
        fprintf(stderr, "%s: worst element %zu: got %.9g want %.9g (|diff| %.3g)\n", what, worst,
                got[worst], want[worst], fabs((double)got[worst] - want[worst]));
        return 0;
    }
    return 1;
}

#define expect_close(got, want, n, atol, rtol, what)                                               \
    assert_true(tensors_close((got), (want), (n), (atol), (rtol), (what)))

typedef struct {
    uint64_t s;
} test_rng;

static inline uint32_t rng_u32(test_rng *r)
{
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(r->s >> 33);
}

/* Uniform in [-1, 1). */
static inline float rng_f(test_rng *r)
{
    return (float)(rng_u32(r) / 1073741824.0 - 1.0); /* rng_u32 has 31 bits */
}

static inline void rng_fill(test_rng *r, float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_f(r);
}

/* Path of a test model under $XBN_MODELS (default build/models). */
static inline const char *test_model_path(char *buf, size_t len, const char *file)
{
    const char *dir = getenv("XBN_MODELS");
    snprintf(buf, len, "%s/%s", dir ? dir : "build/models", file);
    return buf;
}

#endif
