/* winograd.c - Winograd F(2x2,3x3) and F(4x4,3x3) convolutions on AVX-512 or AVX2. See
 * winograd.h.
 *
 * Layout: a call covering nt tiles transforms them into v [a*a][nt][cin] (a = m + 2; position
 * k of tile t at v[k][t]), runs one gemm_packed per position into prod [a*a][nt][cout], and
 * transforms prod back into the output. Transforms work on 16 channels at a time (one zmm)
 * or 8 (one ymm), which is why channel counts are multiples of 16. The matrices are Lavin & Gray's
 * ("Fast Algorithms for Convolutional Neural Networks", 2015); each 2-D transform is the 1-D
 * one over columns, then over rows.
 */
#include "engine/kernels/winograd.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#define WINO_L2_BYTES (1 << 20) /* the smallest L2 of the AVX-512 server cores */

int wino_choose(int cin, int cout)
{
    /* F(4x4) multiplies a layer's weights by 4, F(2x2) by 16/9, and they are read once per
     * sample (samples run whole). Measured on ResNet50, 2 threads, batch 8: F(2x2) on the
     * 512x512 layer4 is 4-11% faster overall than direct; F(4x4) on the 256x256 layer3
     * gains nothing over F(2x2) for 2.25x its weights. */
    if (cin % 16 || cout % 16) return 0;
    long pairs = (long)cin * cout;
    return pairs <= 128 * 128 ? 4 : pairs <= 512 * 512 ? 2 : 0;
}

size_t wino_weight_floats(int m, int cin, int cout)
{
    return (size_t)(m + 2) * (m + 2) * gemm_packed_floats(cin, cout);
}

int wino_weights_in_l2(int m, int cin, int cout)
{
    return wino_weight_floats(m, cin, cout) * sizeof(float) <= WINO_L2_BYTES;
}

int wino_tiles(int m, int h, int w)
{
    return ((h + m - 1) / m) * ((w + m - 1) / m);
}

size_t wino_scratch_floats(int m, int tiles, int cin, int cout)
{
    return (size_t)(m + 2) * (m + 2) * tiles * (cin + cout);
}

int wino_pack_weights(int m, const float *w, int cin, int cout, float *u)
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
            gemm_pack_b(tmp, cin, cout, u + (size_t)(p * a + q) * gemm_packed_floats(cin, cout));
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

void wino_input(int m, const float *in, int h, int w, int cin, int t_lo, int t_hi, int row0,
                int rows, float *v, gemm_isa isa)
{
    int avx512 = isa == GEMM_AVX512;
    if (m == 4)
        (avx512 ? input_f4_avx512 : input_f4_avx2)(in, h, w, cin, t_lo, t_hi, row0, rows, v);
    else
        (avx512 ? input_f2_avx512 : input_f2_avx2)(in, h, w, cin, t_lo, t_hi, row0, rows, v);
}

void wino_gemm(const float *v, int rows, int cin, const float *u, int cout, int k_lo, int k_hi,
               float *prod, gemm_isa isa)
{
    gemm_epilogue plain = {NULL, NULL, -INFINITY, INFINITY, 0};
    size_t per = gemm_packed_floats(cin, cout);
    for (int k = k_lo; k < k_hi; k++)
        gemm_packed(v + (size_t)k * rows * cin, rows, cin, u + k * per, cout, 0, (cout + 31) / 32,
                    prod + (size_t)k * rows * cout, &plain, isa);
}

void wino_output(int m, const float *prod, int row0, int rows, int h, int w, int cout,
                 const gemm_epilogue *e, int t_lo, int t_hi, float *out, gemm_isa isa)
{
    int avx512 = isa == GEMM_AVX512;
    if (m == 4)
        (avx512 ? output_f4_avx512 : output_f4_avx2)(prod, row0, rows, h, w, cout, e, t_lo, t_hi,
                                                     out);
    else
        (avx512 ? output_f2_avx512 : output_f2_avx2)(prod, row0, rows, h, w, cout, e, t_lo, t_hi,
                                                     out);
}

void wino_conv(int m, const float *in, int h, int w, int cin, const float *u, int cout,
               const gemm_epilogue *e, int t_lo, int t_hi, float *scratch, float *out, gemm_isa isa)
{
    int positions = (m + 2) * (m + 2);
    /* Weights that fit in L2 are cheap to re-read: go 8 tiles at a time so the transformed
     * tiles stay in cache too (ResNet50 layer1: 18% faster). Larger weights are read once
     * for the whole range (layer2 and 3: chunks of 8 or 32 are 5-15% slower). */
    int chunk = wino_weights_in_l2(m, cin, cout) ? 8 : t_hi - t_lo;
    for (int c0 = t_lo; c0 < t_hi; c0 += chunk) {
        int c1 = t_hi - c0 < chunk ? t_hi : c0 + chunk, rows = c1 - c0;
        float *v = scratch, *prod = scratch + (size_t)positions * rows * cin;
        wino_input(m, in, h, w, cin, c0, c1, c0, rows, v, isa);
        wino_gemm(v, rows, cin, u, cout, 0, positions, prod, isa);
        wino_output(m, prod, c0, rows, h, w, cout, e, c0, c1, out, isa);
    }
}
