/* gemm_packed.h - the engine's own single-precision GEMM for convolutions, on weights packed
 * once at load, with micro-kernels for AVX-512 and for AVX2 + FMA (gemm_packed.c).
 *
 * Why not BLAS for everything: OpenBLAS gives a row of C different bits depending on how many
 * rows the call has (bench/gemm_row_invariance.c), so with it every sample needs its own
 * GEMM call, which is slow on small feature maps; and it repacks the weights on every call.
 * This GEMM computes every element with the same FMA sequence whatever the number of rows,
 * so one call can cover a whole batch and stay bit-for-bit batch-invariant, and the weights
 * are packed once at load. The AVX-512 and AVX2 kernels give the same bits.
 *
 * Callers reach these functions through the kernel table (kernel_table.h), which holds one
 * instruction set's entry points with their tile geometry; nothing here tests the CPU, and
 * a function of one instruction set may only run on a CPU that has it.
 */
#ifndef XBN_GEMM_PACKED_H
#define XBN_GEMM_PACKED_H

#include <stddef.h>

/* Packed weights: b [k][n] in panels of GEMM_PANEL_COLS columns, panel p = k * 32 floats (zero
 * beyond n): [k][32] for AVX-512, two halves [k][16] one after the other for AVX2, whose tile
 * is 16 columns wide (the table's pack function). */
#define GEMM_PANEL_COLS 32
/* Rows of one micro-kernel tile: AVX-512 holds 8 rows x 32 columns in 16 of its 32 zmm
 * registers; AVX2, with 16 ymm registers in all, 6 rows x 16 columns in 12, run twice per
 * panel. A tile's row pointers are kept GEMM_MAX_TILE_ROWS apart whatever its height. */
#define GEMM_AVX512_TILE_ROWS 8
#define GEMM_AVX2_TILE_ROWS 6
#define GEMM_MAX_TILE_ROWS 8

/* Floats needed to pack a [k][n] matrix: k * n rounded up to whole panels. */
static inline size_t gemm_packed_floats(int k, int n)
{
    return (size_t)k * ((n + GEMM_PANEL_COLS - 1) / GEMM_PANEL_COLS * GEMM_PANEL_COLS);
}

/* What happens to a . b before it is stored: + bias [n] (or nothing when NULL), then + res [m][n]
 * (row stride n, or NULL), then a clamp to [lo, hi] (the activation), with res added after the
 * clamp instead when res_after_act. The same operations in the same order as bias_act. */
typedef struct {
    const float *bias;
    const float *res;
    float lo, hi;
    int res_after_act;
} gemm_epilogue;

typedef struct conv_geom conv_geom;

/* b [k][n] row-major -> packed (gemm_packed_floats(k, n) floats), caller-owned. */
typedef void gemm_pack_fn(const float *b, int k, int n, float *packed);

/* c [m][n] = epilogue(a [m][k] . b), for the panels p_lo..p_hi-1 of the packed b (columns
 * 32*p_lo .. min(32*p_hi, n)-1). a and c are row-major with row strides k and n. */
typedef void gemm_packed_fn(const float *a, int m, int k, const float *packed, int n, int p_lo,
                            int p_hi, float *c, const gemm_epilogue *e);

/* A KxK convolution straight from the input, no im2col: output pixels [lo, hi) (row-major
 * over g->oh x g->ow) of in [h][w][c] -> out [hi-lo][n], with the weights packed from the
 * [(ky*k+kx)*c+ci][n] matrix; `zeros` is k*c zero floats for taps in the padding. The same
 * bits as im2col_rows followed by the GEMM. k <= KERNEL_MAX_SIDE. */
typedef void conv_packed_fn(const float *in, const conv_geom *g, int k, int stride, int lo, int hi,
                            const float *zeros, const float *packed, int n, int p_lo, int p_hi,
                            float *out, const gemm_epilogue *e);

/* Plain C, but built with the kernels: reached through the table. gemm_pack_b: panels [k][32];
 * gemm_pack_b_halves (the AVX2 table's): each panel as its two halves [k][16], one after the
 * other, so that the AVX2 tile, 16 columns wide, reads a whole cache line per k. */
gemm_pack_fn gemm_pack_b, gemm_pack_b_halves;
gemm_packed_fn gemm_packed_avx512, gemm_packed_avx2;
conv_packed_fn conv_packed_avx512, conv_packed_avx2;

#endif
