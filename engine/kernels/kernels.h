/* kernels.h - the compute kernels besides the convolutions' GEMM, one sample at a time, NHWC.
 *
 * Every kernel works on one sample so that what a sample computes never depends on the batch
 * around it (the batch-invariance guarantee). The shapes are in each comment; `in`, `out` and
 * scratch are caller-owned (arena) and never alias unless stated. Nothing here allocates.
 * tests/unit/test_kernels.c holds a naive reference for each.
 *
 * kernels.c is compiled once per instruction set and its functions carry the set's suffix:
 * _avx2 (x86-64-v3, fused multiply-adds: the AVX2 and AVX-512 kernel tables) and _base
 * (baseline x86-64, no fusion: the BLAS table, for CPUs without AVX2). Callers reach them
 * through the kernel table (kernel_table.h), never by name.
 */
#ifndef XBN_KERNELS_H
#define XBN_KERNELS_H

#include "engine/net.h"

typedef struct conv_geom {
    int h, w, c; /* input */
    int oh, ow;  /* output */
    int pt, pl;  /* padding before (top, left); after is implied by oh, ow */
} conv_geom;

/* Depthwise 3x3, stride 1 or 2: in [h][w][c], w [9][c] -> out [oh][ow][c]. */
typedef void dwconv3x3_fn(const float *in, const conv_geom *g, int stride, const float *w,
                          float *out);

/* GroupNorm on x [h][w][c], groups of cpg consecutive channels, in three steps so that a team
 * can share the statistics and each member touch only its own rows, with the same bits however
 * the rows are split: gn_row_stats sums rows [r_lo, r_hi) each on its own into stats
 * [h][2][c] (the row's per-channel mean and sum of squared deviations; work: 2c floats);
 * gn_finish combines all h rows into each channel's group mean and rstd * gamma (mean_c, scale:
 * c floats each; work: 2c doubles); gn_apply normalises `pixels` pixels in place, with the
 * affine and the activation. */
typedef void gn_row_stats_fn(const float *x, int w, int c, int r_lo, int r_hi, float *stats,
                             float *work);
typedef void gn_finish_fn(const float *stats, int h, int w, int c, int cpg, float eps,
                          const float *gamma, float *mean_c, float *scale, double *work);
typedef void gn_apply_fn(float *x, int pixels, int c, const float *mean_c, const float *scale,
                         const float *beta, act_kind act);

/* Max pool k x k: in [h][w][c] -> out [oh][ow][c]; padding acts as -infinity. */
typedef void maxpool_fn(const float *in, const conv_geom *g, int k, int stride, float *out);

/* Global average pool: in [hw][c] -> out [c]; work: c doubles. */
typedef void gap_fn(const float *in, int hw, int c, float *out, double *work);

/* Dense: out [cout] = w [cout][cin] . in [cin] + b. */
typedef void dense_fn(const float *in, const float *w, const float *b, int cin, int cout,
                      float *out);

/* in [c][h][w] (NCHW, one sample) -> out [h][w][c], image rows y_lo..y_hi-1 only. */
typedef void nchw_to_nhwc_fn(const float *in, int c, int h, int w, int y_lo, int y_hi, float *out);

#define KERNELS_DECLARE(isa)                                                                       \
    dwconv3x3_fn dwconv3x3_##isa;                                                                  \
    gn_row_stats_fn gn_row_stats_##isa;                                                            \
    gn_finish_fn gn_finish_##isa;                                                                  \
    gn_apply_fn gn_apply_##isa;                                                                    \
    maxpool_fn maxpool_##isa;                                                                      \
    gap_fn gap_##isa;                                                                              \
    dense_fn dense_##isa;                                                                          \
    nchw_to_nhwc_fn nchw_to_nhwc_##isa;

KERNELS_DECLARE(avx2)
KERNELS_DECLARE(base)

#endif
