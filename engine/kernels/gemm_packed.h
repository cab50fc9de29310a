/* gemm_packed.h - the engine's own single-precision GEMM for convolutions (AVX-512 or AVX2 + FMA).
 *
 * Why not BLAS for everything: OpenBLAS gives a row of C different bits depending on how many
 * rows the call has (bench/gemm_row_invariance.c), so with it every sample needs its own
 * GEMM call, which is slow on small feature maps; and it repacks the weights on every call.
 * This GEMM computes every element with the same FMA sequence whatever the number of rows,
 * so one call can cover a whole batch and stay bit-for-bit batch-invariant, and the weights
 * are packed once at load. Used where the CPU has AVX-512F or AVX2 + FMA (the same bits on
 * both); elsewhere the engine calls BLAS per sample.
 */
#ifndef XBN_GEMM_PACKED_H
#define XBN_GEMM_PACKED_H

#include <stddef.h>

/* The kernels gemm_packed, conv_packed and Winograd run, chosen once per model at load and
 * passed to every call. GEMM_AVX2 on an AVX-512 CPU is allowed (the tests run both). */
typedef enum { GEMM_NONE = 0, GEMM_AVX2 = 1, GEMM_AVX512 = 2 } gemm_isa;

/* The best this CPU runs: GEMM_AVX512 with AVX-512F, GEMM_AVX2 with AVX2 and FMA, else
 * GEMM_NONE (no packed GEMM: the engine calls BLAS). */
gemm_isa gemm_isa_best(void);

/* Floats needed to pack a [k][n] matrix: k * n rounded up to panels of 32 columns. */
size_t gemm_packed_floats(int k, int n);

/* b [k][n] row-major -> packed (gemm_packed_floats(k, n) floats), caller-owned. */
void gemm_pack_b(const float *b, int k, int n, float *packed);

/* What happens to a . b before it is stored: + bias [n] (or nothing when NULL), then + res [m][n]
 * (row stride n, or NULL), then a clamp to [lo, hi] (the activation), with res added after the
 * clamp instead when res_after_act. The same operations in the same order as bias_act. */
typedef struct {
    const float *bias;
    const float *res;
    float lo, hi;
    int res_after_act;
} gemm_epilogue;

/* c [m][n] = epilogue(a [m][k] . b), for the 32-column panels p_lo..p_hi-1 of the packed b
 * (columns 32*p_lo .. min(32*p_hi, n)-1). a and c are row-major with row strides k and n. */
void gemm_packed(const float *a, int m, int k, const float *packed, int n, int p_lo, int p_hi,
                 float *c, const gemm_epilogue *e, gemm_isa isa);

/* A KxK convolution straight from the input, no im2col: output pixels [lo, hi) (row-major
 * over g->oh x g->ow) of in [h][w][c] -> out [hi-lo][n], with the weights packed from the
 * [(ky*k+kx)*c+ci][n] matrix; `zeros` is k*c zero floats for taps in the padding. The same
 * bits as im2col_rows followed by gemm_packed. k <= 7. */
typedef struct conv_geom conv_geom;
void conv_packed(const float *in, const conv_geom *g, int k, int stride, int lo, int hi,
                 const float *zeros, const float *packed, int n, int p_lo, int p_hi, float *out,
                 const gemm_epilogue *e, gemm_isa isa);

#endif
