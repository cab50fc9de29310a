/* blas.h - the convolutions of the BLAS kernel table: im2col rows, sgemm, then bias and
 * activation, one sample per call. The engine takes this path on CPUs without AVX2 and FMA
 * (or when told to); blas.c is the only file with cblas.h, built for baseline x86-64 (OpenBLAS
 * picks its own kernels for the CPU at run time).
 */
#ifndef XBN_BLAS_H
#define XBN_BLAS_H

#include "engine/kernels/kernels.h"

/* Tell BLAS to run single-threaded in the calling thread: the session's own team splits the
 * work, so the arithmetic of each call never depends on BLAS's thread heuristics. */
void kernels_init(void);

/* in [h][w][cin] -> col [hi-lo][k*k*cin] for output pixels lo..hi-1 (row-major over oh x ow),
 * zero where the window leaves the input. */
void im2col_rows(const float *in, const conv_geom *g, int k, int stride, int lo, int hi,
                 float *col);

/* out[m][n] = sum_k a[m][k] * b[k][n], row-major, through sgemm. */
void gemm(const float *a, const float *b, float *out, int m, int n, int k);
/* The same on column block [n_lo, n_hi) of b and out, whose rows are `ld` floats apart. */
void gemm_cols(const float *a, const float *b, float *out, int m, int ld, int n_lo, int n_hi,
               int k);

/* out [rows][ld], columns [c_lo, c_hi): act(out + bias) (bias [ld], never NULL) with the
 * residual res [rows][ld] (or NULL) added before or after the activation as `mode` says. */
void bias_act(float *out, const float *bias, const float *res, int rows, int ld, int c_lo, int c_hi,
              act_kind act, res_mode mode);

#endif
