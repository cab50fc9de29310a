/* winograd_simd.c - the kernels of Winograd F(2x2,3x3) and F(4x4,3x3) convolutions on AVX-512
 * or AVX2, and the weights' transform. See winograd.h.
 *
 * Layout: a call covering nt tiles transforms them into v [a*a][nt][cin] (a = m + 2; position
 * k of tile t at v[k][t]), runs one gemm_packed per position into prod [a*a][nt][cout], and
 * transforms prod back into the output. Transforms work on 16 channels at a time (one zmm)
 * or 8 (one ymm), which is why channel counts are multiples of 16. The matrices are Lavin & Gray's
 * ("Fast Algorithms for Convolutional Neural Networks", 2015); each 2-D transform is the 1-D
 * one over columns, then over rows.
 *
 * Built for x86-64-v3 (AVX2 + FMA) with the compiler free to fuse multiply-adds, its AVX-512
 * functions by target attribute: the engine reaches it only through a packed kernel table.
 * wino_pack_weights is plain C but lives here so that its sums in double keep the fused
 * multiply-adds they have always had (the transformed weights' bits).
 */
#include "engine/kernels/winograd.h"
#include "engine/limits.h"

#include <immintrin.h>
#include <stdlib.h>

int wino_pack_weights(int m, const float *w, int cin, int cout, gemm_pack_fn *pack, float *u)
{
    static const double g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    static const double g4[6][3] = {{1 / 4., 0, 0},
                                    {-1 / 6., -1 / 6., -1 / 6.},
                                    {-1 / 6., 1 / 6., -1 / 6.},
                                    {1 / 24., 1 / 12., 1 / 6.},
                                    {1 / 24., -1 / 12., 1 / 6.},
                                    {0, 0, 1}};
    const double(*g)[3] = m == 4 ? g4 : g2;
    int a = m + 2;
    size_t plane = (size_t)cin * cout;
    float *tmp = malloc(plane * sizeof *tmp);
    if (!tmp) return -1;
    /* U = G w G^T per channel pair; position (p, q) becomes its own [cin][cout] matrix */
    for (int p = 0; p < a; p++)
        for (int q = 0; q < a; q++) {
            for (size_t i = 0; i < plane; i++) {
                double acc = 0;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++)
                        acc += g[p][ky] * g[q][kx] * w[(size_t)(ky * 3 + kx) * plane + i];
                tmp[i] = (float)acc;
            }
            pack(tmp, cin, cout, u + (size_t)(p * a + q) * gemm_packed_floats(cin, cout));
        }
    free(tmp);
    return 0;
}

/* The transforms, once per instruction set (winograd_tiles.h). */
#define V __m512
#define V_LOAD _mm512_loadu_ps
#define V_STORE _mm512_storeu_ps
#define V_ZERO _mm512_setzero_ps
#define V_SET1 _mm512_set1_ps
#define V_MIN _mm512_min_ps
#define V_MAX _mm512_max_ps
#define TARGET __attribute__((target("avx512f")))
#define NAME(f) f##_avx512
#include "engine/kernels/winograd_tiles.h"

#define V __m256
#define V_LOAD _mm256_loadu_ps
#define V_STORE _mm256_storeu_ps
#define V_ZERO _mm256_setzero_ps
#define V_SET1 _mm256_set1_ps
#define V_MIN _mm256_min_ps
#define V_MAX _mm256_max_ps
#define TARGET __attribute__((target("avx2,fma")))
#define NAME(f) f##_avx2
#include "engine/kernels/winograd_tiles.h"
