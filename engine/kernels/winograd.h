/* winograd.h - 3x3 stride-1 convolutions with fewer multiplications: Winograd F(m x m, 3x3).
 *
 * Computed directly, a 3x3 convolution costs 9 multiply-adds per output pixel and channel
 * pair. Winograd's minimal filtering gets an m x m output tile from an (m+2) x (m+2) input
 * tile with (m+2)^2 products per channel pair: F(2x2,3x3) 16 instead of 36 (2.25x fewer),
 * F(4x4,3x3) 36 instead of 144 (4x fewer). Input tiles are transformed, the products become
 * (m+2)^2 independent GEMMs [tiles][cin] x [cin][cout] run by the packed GEMM on weights
 * transformed and packed at load, and the output transform adds the bias and activation.
 * Every tile goes through the same arithmetic whatever range of tiles a call covers (the
 * GEMM is row-independent), so results never depend on the batch or the thread split.
 *
 * The price: (m+2)^2 / 9 times the weights, streamed once per sample, and more rounding
 * (larger tiles amplify it; tests/unit/test_kernels.c bounds it against the exact sum). Used
 * only with a packed kernel table (kernel_table.h); callers check wino_choose first.
 *
 * winograd.c holds the choice, the geometry and the steps' sequence, for any instruction set;
 * winograd_simd.c the transforms, per vector width, reached through the kernel table.
 */
#ifndef XBN_WINOGRAD_H
#define XBN_WINOGRAD_H

#include <stddef.h>

#include "engine/kernels/gemm_packed.h"

struct kernel_table;

/* Tile size m for a 3x3 stride-1 pad-1 convolution of these channel counts: 4, 2, or 0 for
 * "compute it directly". A choice by layer shape only (never by input or batch size). */
int wino_choose(int cin, int cout);

/* Floats of transformed, packed weights for F(m x m, 3x3). */
size_t wino_weight_floats(int m, int cin, int cout);

/* 1 if the transformed weights fit in a core's L2 (WINO_L2_BYTES), so re-reading them is
 * cheap: a team then splits the tiles and each member runs wino_conv, rather than sharing
 * the steps. */
int wino_weights_in_l2(int m, int cin, int cout);

/* Number of m x m output tiles covering an h x w output (row-major, edge tiles cropped). */
int wino_tiles(int m, int h, int w);

/* Scratch floats wino_conv needs for a call covering `tiles` tiles. */
size_t wino_scratch_floats(int m, int tiles, int cin, int cout);

/* Output tiles [t_lo, t_hi) of the convolution of in [h][w][cin] (padding 1, stride 1) into
 * out [h][w][cout]: e->bias added, clamped to [e->lo, e->hi]; e->res must be NULL. cin and
 * cout are multiples of 16. scratch: wino_scratch_floats(m, t_hi - t_lo, cin, cout). Runs
 * the three steps below with kt's kernels. */
void wino_conv(const struct kernel_table *kt, int m, const float *in, int h, int w, int cin,
               const float *u, int cout, const gemm_epilogue *e, int t_lo, int t_hi, float *scratch,
               float *out);

/* The GEMM step alone, for a team that shares v and prod between barriers: positions [k_lo,
 * k_hi) of the a*a (a = m + 2), so each thread reads only its positions' weights. For the
 * tiles of a call, v is [a*a][rows][cin] and prod [a*a][rows][cout]. */
void wino_gemm(const struct kernel_table *kt, const float *v, int rows, int cin, const float *u,
               int cout, int k_lo, int k_hi, float *prod);

/* The kernels (winograd_simd.c), through the table. wino_pack_weights: w [(ky*3+kx)*cin+ci]
 * [cout] (the direct layout) -> u (wino_weight_floats floats, caller-owned), transformed in
 * double and rounded once; 0, or -1 when out of memory. wino_input transforms tiles [t_lo,
 * t_hi) into rows t - row0 of v; wino_output turns rows t - row0 of prod into tiles [t_lo,
 * t_hi) of out. m is 2 or 4. */
typedef int wino_pack_fn(int m, const float *w, int cin, int cout, gemm_pack_fn *pack, float *u);
typedef void wino_input_fn(int m, const float *in, int h, int w, int cin, int t_lo, int t_hi,
                           int row0, int rows, float *v);
typedef void wino_output_fn(int m, const float *prod, int row0, int rows, int h, int w, int cout,
                            const gemm_epilogue *e, int t_lo, int t_hi, float *out);

wino_pack_fn wino_pack_weights; /* plain C, built with the kernels' flags: same bits as ever */
wino_input_fn wino_input_avx512, wino_input_avx2;
wino_output_fn wino_output_avx512, wino_output_avx2;

#endif
