/* winograd.c - which convolutions use Winograd, their sizes, and the sequence of the three
 * steps over a kernel table's transforms and GEMM. See winograd.h; the kernels themselves are
 * in winograd_simd.c.
 *
 * Layout: a call covering nt tiles transforms them into v [a*a][nt][cin] (a = m + 2; position
 * k of tile t at v[k][t]), runs one GEMM per position into prod [a*a][nt][cout], and
 * transforms prod back into the output.
 */
#include "engine/kernels/winograd.h"

#include <math.h>

#include "engine/kernels/kernel_table.h"
#include "engine/limits.h"

/* Tiles per step when the transformed weights fit in L2 (wino_conv), before rounding to the
 * table's tile rows: 8 measured best on AVX-512, where it is one tile. */
#define WINO_CHUNK_TILES 8

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

void wino_gemm(const kernel_table *kt, const float *v, int rows, int cin, const float *u, int cout,
               int k_lo, int k_hi, float *prod)
{
    gemm_epilogue plain = {NULL, NULL, -INFINITY, INFINITY, 0};
    size_t per = gemm_packed_floats(cin, cout);
    int panels = (cout + kt->panel_cols - 1) / kt->panel_cols;
    for (int k = k_lo; k < k_hi; k++)
        kt->gemm(v + (size_t)k * rows * cin, rows, cin, u + k * per, cout, 0, panels,
                 prod + (size_t)k * rows * cout, &plain);
}

void wino_conv(const kernel_table *kt, int m, const float *in, int h, int w, int cin,
               const float *u, int cout, const gemm_epilogue *e, int t_lo, int t_hi, float *scratch,
               float *out)
{
    int positions = (m + 2) * (m + 2);
    /* Weights that fit in L2 are cheap to re-read: go 8 tiles at a time so the transformed
     * tiles stay in cache too (ResNet50 layer1: 18% faster). Larger weights are read once
     * for the whole range (layer2 and 3: chunks of 8 or 32 are 5-15% slower). A chunk is the
     * rows of each position's GEMM, so it is the whole number of the table's GEMM tiles
     * nearest to WINO_CHUNK_TILES: on AVX2 (6-row tiles) 8 ran as a 6-row and a 2-row tile.
     * Zen 3, layer1 alone: 209 effective GFLOP/s with 8, 253-261 with 6 or 12; in ResNet50
     * 1.15 -> 0.97 ms per convolution with 12, and 6 another 2-3% faster with half the
     * scratch (one process alternating builds). */
    int chunk = wino_weights_in_l2(m, cin, cout)
                    ? (WINO_CHUNK_TILES + kt->tile_rows / 2) / kt->tile_rows * kt->tile_rows
                    : t_hi - t_lo;
    ENGINE_ASSERT(chunk >= 1 || t_hi <= t_lo); /* a tile taller than 2 x WINO_CHUNK_TILES: 0 */
    for (int c0 = t_lo; c0 < t_hi; c0 += chunk) {
        int c1 = t_hi - c0 < chunk ? t_hi : c0 + chunk, rows = c1 - c0;
        float *v = scratch, *prod = scratch + (size_t)positions * rows * cin;
        kt->wino_input(m, in, h, w, cin, c0, c1, c0, rows, v);
        wino_gemm(kt, v, rows, cin, u, cout, 0, positions, prod);
        kt->wino_output(m, prod, c0, rows, h, w, cout, e, c0, c1, out);
    }
}
