/* blas.c - see blas.h. cblas.h is included here and nowhere else. */
#include "engine/kernels/blas.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void kernels_init(void)
{
    openblas_set_num_threads(1);
}

const char *engine_blas_core(void)
{
    return openblas_get_corename();
}

void im2col_rows(const float *in, const conv_geom *g, int k, int stride, int lo, int hi, float *col)
{
    size_t cc = (size_t)g->c;
    for (int r = lo; r < hi; r++) {
        int oy = r / g->ow, ox = r % g->ow;
        float *row = col + (size_t)(r - lo) * k * k * cc;
        for (int ky = 0; ky < k; ky++) {
            int iy = oy * stride - g->pt + ky;
            for (int kx = 0; kx < k; kx++, row += cc) {
                int ix = ox * stride - g->pl + kx;
                int inside = iy >= 0 && iy < g->h && ix >= 0 && ix < g->w;
                const float *src = inside ? in + ((size_t)iy * g->w + ix) * cc : NULL;
                if (cc < 16) /* the stem's 3 channels: a call per tap would cost more */
                    for (size_t i = 0; i < cc; i++) row[i] = inside ? src[i] : 0.0f;
                else if (inside)
                    memcpy(row, src, cc * sizeof *row);
                else
                    memset(row, 0, cc * sizeof *row);
            }
        }
    }
}

void gemm(const float *a, const float *b, float *out, int m, int n, int k)
{
    /* Row-major out = a.b is column-major out^T = b^T.a^T. Called column-major because
     * OpenBLAS's row-major "direct" small-GEMM path (SkylakeX) sums in another order, and a
     * kernel choice that changes with m would break batch invariance. */
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, m, k, 1.0f, b, n, a, k, 0.0f, out, n);
}

void gemm_cols(const float *a, const float *b, float *out, int m, int ld, int n_lo, int n_hi, int k)
{
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n_hi - n_lo, m, k, 1.0f, b + n_lo, ld, a,
                k, 0.0f, out + n_lo, ld);
}

/* The activation as a clamp to [lo, hi]: compiles to max/min instructions (fmaxf would be
 * a libm call because of its NaN rules). */
static inline float clamp(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

void bias_act(float *out, const float *bias, const float *res, int rows, int ld, int c_lo, int c_hi,
              act_kind act, res_mode mode)
{
    /* One branch-free inner loop per case, so each vectorises. */
    float lo = act == ACT_NONE ? -INFINITY : 0.0f, hi = act == ACT_RELU6 ? 6.0f : INFINITY;
    for (int r = 0; r < rows; r++) {
        float *restrict o = out + (size_t)r * ld;
        const float *restrict s = res ? res + (size_t)r * ld : NULL;
        if (!s || mode == RES_NONE)
            for (int i = c_lo; i < c_hi; i++) o[i] = clamp(o[i] + bias[i], lo, hi);
        else if (mode == RES_ADD_THEN_ACT)
            for (int i = c_lo; i < c_hi; i++) o[i] = clamp(o[i] + bias[i] + s[i], lo, hi);
        else
            for (int i = c_lo; i < c_hi; i++) o[i] = clamp(o[i] + bias[i], lo, hi) + s[i];
    }
}
