/* kernels.h - the compute kernels, one sample at a time, NHWC.
 *
 * Every kernel works on one sample so that what a sample computes never depends on the batch
 * around it (the batch-invariance guarantee). The shapes are in each comment; `in`, `out` and
 * scratch are caller-owned (arena) and never alias unless stated. Nothing here allocates.
 * tests/test_kernels.c holds a naive reference for each.
 */
#ifndef XBN_KERNELS_H
#define XBN_KERNELS_H

#include "engine/net.h"

typedef struct conv_geom {
    int h, w, c; /* input */
    int oh, ow;  /* output */
    int pt, pl;  /* padding before (top, left); after is implied by oh, ow */
} conv_geom;

/* in [h][w][cin] -> col [hi-lo][k*k*cin] for output pixels lo..hi-1 (row-major over oh x ow),
 * zero where the window leaves the input. */
void im2col_rows(const float *in, const conv_geom *g, int k, int stride, int lo, int hi,
                 float *col);

/* Tell BLAS to run single-threaded in the calling thread: the session's own team splits the
 * work, so the arithmetic of each call never depends on BLAS's thread heuristics. */
void kernels_init(void);
/* out[m][n] = sum_k a[m][k] * b[k][n], row-major, through sgemm. */
void gemm(const float *a, const float *b, float *out, int m, int n, int k);
/* The same on column block [n_lo, n_hi) of b and out, whose rows are `ld` floats apart. */
void gemm_cols(const float *a, const float *b, float *out, int m, int ld, int n_lo, int n_hi,
               int k);

/* out [rows][ld], columns [c_lo, c_hi): act(out + bias) (bias [ld], never NULL) with the
 * residual res [rows][ld] (or NULL) added before or after the activation as `mode` says. */
void bias_act(float *out, const float *bias, const float *res, int rows, int ld, int c_lo, int c_hi,
              act_kind act, res_mode mode);

/* Depthwise 3x3: in [h][w][c], w [9][c] -> out [oh][ow][c]. */
void dwconv3x3(const float *in, const conv_geom *g, int stride, const float *w, float *out);

/* GroupNorm on x [h][w][c], groups of cpg consecutive channels, in three steps so that a team
 * can share the statistics and each member touch only its own rows, with the same bits however
 * the rows are split: gn_row_stats sums rows [r_lo, r_hi) each on its own into stats
 * [h][2][c] (the row's per-channel mean and sum of squared deviations); gn_finish combines all
 * h rows into each channel's group mean and rstd * gamma (mean_c, scale: c floats each);
 * gn_apply normalises `pixels` pixels in place, with the affine and the activation. */
void gn_row_stats(const float *x, int w, int c, int r_lo, int r_hi, float *stats);
void gn_finish(const float *stats, int h, int w, int c, int cpg, float eps, const float *gamma,
               float *mean_c, float *scale);
void gn_apply(float *x, int pixels, int c, const float *mean_c, const float *scale,
              const float *beta, act_kind act);

/* Max pool k x k: in [h][w][c] -> out [oh][ow][c]; padding acts as -infinity. */
void maxpool(const float *in, const conv_geom *g, int k, int stride, float *out);

/* Global average pool: in [hw][c] -> out [c]. */
void gap_forward(const float *in, int hw, int c, float *out);

/* Dense: out [cout] = w [cout][cin] . in [cin] + b. */
void dense_forward(const float *in, const float *w, const float *b, int cin, int cout, float *out);

/* in [c][h][w] (NCHW, one sample) -> out [h][w][c], image rows y_lo..y_hi-1 only. */
void nchw_to_nhwc_rows(const float *in, int c, int h, int w, int y_lo, int y_hi, float *out);

#endif
