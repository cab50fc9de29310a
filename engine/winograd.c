/* winograd.c - Winograd F(2x2,3x3) and F(4x4,3x3) convolutions on AVX-512. See winograd.h.
 *
 * Layout: a call covering nt tiles transforms them into v [a*a][nt][cin] (a = m + 2; position
 * k of tile t at v[k][t]), runs one gemm_packed per position into prod [a*a][nt][cout], and
 * transforms prod back into the output. Transforms work on 16 channels at a time (one zmm),
 * which is why channel counts are multiples of 16. The matrices are Lavin & Gray's
 * ("Fast Algorithms for Convolutional Neural Networks", 2015); each 2-D transform is the 1-D
 * one over columns, then over rows.
 */
#include "winograd.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#define AVX512 __attribute__((target("avx512f")))
#define WINO_L2_BYTES (1 << 20) /* the smallest L2 of the AVX-512 server cores */
#define INLINE static inline __attribute__((always_inline)) AVX512

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

/* 1-D input transform B^T d: `a` values `ds` apart -> `a` values `rs` apart. */
INLINE void input_1d(int a, const __m512 *d, int ds, __m512 *r, int rs)
{
    if (a == 4) {
        r[0] = d[0] - d[2 * ds];
        r[rs] = d[ds] + d[2 * ds];
        r[2 * rs] = d[2 * ds] - d[ds];
        r[3 * rs] = d[ds] - d[3 * ds];
        return;
    }
    __m512 d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
    __m512 p = d4 - 4.0f * d2, q = d3 - 4.0f * d1, s = d4 - d2, t = 2.0f * (d3 - d1);
    r[0] = 4.0f * d0 - 5.0f * d2 + d4;
    r[rs] = p + q;
    r[2 * rs] = p - q;
    r[3 * rs] = s + t;
    r[4 * rs] = s - t;
    r[5 * rs] = 4.0f * d1 - 5.0f * d3 + d5;
}

/* 1-D output transform A^T x: `a` values `xs` apart -> `a - 2` values `os` apart. */
INLINE void output_1d(int a, const __m512 *x, int xs, __m512 *o, int os)
{
    if (a == 4) {
        o[0] = x[0] + x[xs] + x[2 * xs];
        o[os] = x[xs] - x[2 * xs] - x[3 * xs];
        return;
    }
    __m512 p = x[xs] + x[2 * xs], q = x[xs] - x[2 * xs];
    __m512 r = x[3 * xs] + x[4 * xs], s = x[3 * xs] - x[4 * xs];
    o[0] = x[0] + p + r;
    o[os] = q + 2.0f * s;
    o[2 * os] = p + 4.0f * r;
    o[3 * os] = q + 8.0f * s + x[5 * xs];
}

/* Tiles [t_lo, t_hi) of in -> rows t - row0 of v [a*a][rows][cin]. Taps in the padding read
 * as zeros. */
INLINE void input_tiles(int a, const float *in, int h, int w, int cin, int t_lo, int t_hi, int row0,
                        int rows, float *v)
{
    int m = a - 2, tw = (w + m - 1) / m;
    size_t pos = (size_t)rows * cin;
    for (int t = t_lo; t < t_hi; t++) {
        const float *src[36];
        int y0 = t / tw * m - 1, x0 = t % tw * m - 1;
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++) {
                int y = y0 + i, x = x0 + j;
                src[i * a + j] =
                    y >= 0 && y < h && x >= 0 && x < w ? in + ((size_t)y * w + x) * cin : NULL;
            }
        float *dst = v + (size_t)(t - row0) * cin;
        for (int c = 0; c < cin; c += 16) {
            __m512 d[36], r[36];
            for (int k = 0; k < a * a; k++)
                d[k] = src[k] ? _mm512_loadu_ps(src[k] + c) : _mm512_setzero_ps();
            for (int j = 0; j < a; j++) input_1d(a, d + j, a, r + j, a);
            for (int i = 0; i < a; i++) input_1d(a, r + i * a, 1, d + i * a, 1);
            for (int k = 0; k < a * a; k++) _mm512_storeu_ps(dst + k * pos + c, d[k]);
        }
    }
}

/* Rows t - row0 of prod [a*a][rows][cout] -> tiles [t_lo, t_hi) of out, with bias and clamp;
 * edge tiles cropped. */
INLINE void output_tiles(int a, const float *prod, int row0, int rows, int h, int w, int cout,
                         const gemm_epilogue *e, int t_lo, int t_hi, float *out)
{
    int m = a - 2, tw = (w + m - 1) / m;
    size_t pos = (size_t)rows * cout;
    __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);
    for (int t = t_lo; t < t_hi; t++) {
        int y0 = t / tw * m, x0 = t % tw * m;
        const float *src = prod + (size_t)(t - row0) * cout;
        for (int c = 0; c < cout; c += 16) {
            __m512 x[36], r[24], o[16];
            for (int k = 0; k < a * a; k++) x[k] = _mm512_loadu_ps(src + k * pos + c);
            for (int j = 0; j < a; j++) output_1d(a, x + j, a, r + j, a);
            for (int i = 0; i < m; i++) output_1d(a, r + i * a, 1, o + i * m, 1);
            __m512 bias = e->bias ? _mm512_loadu_ps(e->bias + c) : _mm512_setzero_ps();
            for (int i = 0; i < m && y0 + i < h; i++)
                for (int j = 0; j < m && x0 + j < w; j++) {
                    __m512 val = _mm512_min_ps(_mm512_max_ps(o[i * m + j] + bias, lo), hi);
                    _mm512_storeu_ps(out + ((size_t)(y0 + i) * w + x0 + j) * cout + c, val);
                }
        }
    }
}

/* The transforms with the tile size a compile-time constant, so the loops unroll. */
AVX512 static void input_f2(const float *in, int h, int w, int cin, int t_lo, int t_hi, int row0,
                            int rows, float *v)
{
    input_tiles(4, in, h, w, cin, t_lo, t_hi, row0, rows, v);
}

AVX512 static void input_f4(const float *in, int h, int w, int cin, int t_lo, int t_hi, int row0,
                            int rows, float *v)
{
    input_tiles(6, in, h, w, cin, t_lo, t_hi, row0, rows, v);
}

AVX512 static void output_f2(const float *prod, int row0, int rows, int h, int w, int cout,
                             const gemm_epilogue *e, int t_lo, int t_hi, float *out)
{
    output_tiles(4, prod, row0, rows, h, w, cout, e, t_lo, t_hi, out);
}

AVX512 static void output_f4(const float *prod, int row0, int rows, int h, int w, int cout,
                             const gemm_epilogue *e, int t_lo, int t_hi, float *out)
{
    output_tiles(6, prod, row0, rows, h, w, cout, e, t_lo, t_hi, out);
}

void wino_input(int m, const float *in, int h, int w, int cin, int t_lo, int t_hi, int row0,
                int rows, float *v)
{
    if (m == 4)
        input_f4(in, h, w, cin, t_lo, t_hi, row0, rows, v);
    else
        input_f2(in, h, w, cin, t_lo, t_hi, row0, rows, v);
}

void wino_gemm(const float *v, int rows, int cin, const float *u, int cout, int k_lo, int k_hi,
               float *prod)
{
    gemm_epilogue plain = {NULL, NULL, -INFINITY, INFINITY, 0};
    size_t per = gemm_packed_floats(cin, cout);
    for (int k = k_lo; k < k_hi; k++)
        gemm_packed(v + (size_t)k * rows * cin, rows, cin, u + k * per, cout, 0, (cout + 31) / 32,
                    prod + (size_t)k * rows * cout, &plain);
}

void wino_output(int m, const float *prod, int row0, int rows, int h, int w, int cout,
                 const gemm_epilogue *e, int t_lo, int t_hi, float *out)
{
    if (m == 4)
        output_f4(prod, row0, rows, h, w, cout, e, t_lo, t_hi, out);
    else
        output_f2(prod, row0, rows, h, w, cout, e, t_lo, t_hi, out);
}

void wino_conv(int m, const float *in, int h, int w, int cin, const float *u, int cout,
               const gemm_epilogue *e, int t_lo, int t_hi, float *scratch, float *out)
{
    int positions = (m + 2) * (m + 2);
    /* Weights that fit in L2 are cheap to re-read: go 8 tiles at a time so the transformed
     * tiles stay in cache too (ResNet50 layer1: 18% faster). Larger weights are read once
     * for the whole range (layer2 and 3: chunks of 8 or 32 are 5-15% slower). */
    int chunk = wino_weights_in_l2(m, cin, cout) ? 8 : t_hi - t_lo;
    for (int c0 = t_lo; c0 < t_hi; c0 += chunk) {
        int c1 = t_hi - c0 < chunk ? t_hi : c0 + chunk, rows = c1 - c0;
        float *v = scratch, *prod = scratch + (size_t)positions * rows * cin;
        wino_input(m, in, h, w, cin, c0, c1, c0, rows, v);
        wino_gemm(v, rows, cin, u, cout, 0, positions, prod);
        wino_output(m, prod, c0, rows, h, w, cout, e, c0, c1, out);
    }
}
