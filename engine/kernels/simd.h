/* simd.h - the one place the engine spells out vectors: 8-float GCC/Clang vector extensions.
 *
 * The compiler lowers these to AVX2 here (x86-64-v3) and to plain scalar code on a target
 * without SIMD, so this is also the scalar fallback. Loads and stores go through memcpy:
 * activations are not 32-byte aligned. Kernels use them only where the compiler does not
 * vectorise the plain loop by itself (measured: bench/, perf).
 */
#ifndef XBN_SIMD_H
#define XBN_SIMD_H

#include <string.h>

typedef float f8 __attribute__((vector_size(32)));

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
