/* simd.h - the one place the engine spells out vectors: 8-float GCC/Clang vector extensions.
 *
 * kernels.c is built twice (kernels.h): in the _avx2 build the compiler lowers these to ymm
 * registers, in the baseline _base build to pairs of SSE registers, the same operations lane
 * by lane. Loads and stores go through memcpy: activations are not 32-byte aligned. Kernels
 * use them only where the compiler does not vectorise the plain loop by itself (measured:
 * bench/, perf).
 */
#ifndef XBN_SIMD_H
#define XBN_SIMD_H

#include <string.h>

typedef float f8 __attribute__((vector_size(32)));

/* Baseline x86-64 has no 32-byte registers, so GCC warns that an f8 passed or returned by
 * value would change the calling convention; in the files that include this header f8 values
 * only pass between static functions, never across an external call. */
#if defined(__clang__)
#if __has_warning("-Wpsabi")
#pragma clang diagnostic ignored "-Wpsabi"
#endif
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

static inline f8 f8_load(const float *p)
{
    f8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void f8_store(float *p, f8 v)
{
    memcpy(p, &v, sizeof v);
}

#endif
