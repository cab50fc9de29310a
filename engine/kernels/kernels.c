/* kernels.c - see kernels.h. Plain loops over NHWC; the channel loop is innermost so the
 * compiler vectorises it (simd.h where it does not by itself).
 *
 * Built once per instruction set with -DKERNELS_ISA=avx2 or base (Makefile); KNAME gives each
 * function that suffix. The _avx2 build is the engine's code as it has always been compiled
 * (x86-64-v3, multiply-adds fused); the _base build runs on any x86-64 CPU.
 */
#include "engine/kernels/kernels.h"
#include "engine/kernels/simd.h"
#include "engine/limits.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define KNAME(f) KNAME_(f, KERNELS_ISA)
#define KNAME_(f, isa) KNAME__(f, isa)
#define KNAME__(f, isa) f##_##isa

/* The activation as a clamp to [lo, hi]: compiles to max/min instructions (fmaxf would be
 * a libm call because of its NaN rules). */
static inline float clamp(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* A run of P horizontally adjacent output pixels, channels [i, i+8): the run reads input
 * columns x0 .. x0 + (P - 1) * stride + 2, each loaded once per kernel row and fed to the (up
 * to three) sums that use it, so a run of eight keeps eight sums in flight for
 * (P - 1) * stride + 6 loads per 3P multiply-adds. Columns outside [m_lo, m_hi) and rows
 * outside [ky0, ky1) are padding and skipped. Every sum takes its taps in the plain order,
 * rows then columns left to right, whatever the run: the bits do not depend on where a pixel
 * falls. Always inlined with constant arguments (dw_run_fns): the loops unroll completely and
 * the sums live in registers. */
static inline __attribute__((always_inline)) void dw_run(const float *in, int w, int c,
                                                         const float *wt, int y0, int x0,
                                                         int stride, int ky0, int ky1, int m_lo,
                                                         int m_hi, int P, int i, float *o)
{
    f8 acc[8];
    memset(acc, 0, sizeof acc);
    for (int ky = ky0; ky < ky1; ky++) {
        const float *row = in + (size_t)(y0 + ky) * w * c + i;
        const float *k = wt + (size_t)ky * 3 * c + i;
        f8 k0 = f8_load(k), k1 = f8_load(k + c), k2 = f8_load(k + 2 * (size_t)c);
#pragma GCC unroll 32
        for (int m = 0; m < (P - 1) * stride + 3; m++) {
            if (m < m_lo || m >= m_hi) continue;
            /* input column x0 + m is tap m - j * stride of pixel j */
            f8 v = f8_load(row + (size_t)(x0 + m) * c);
            if (m % stride == 0 && m / stride < P) acc[m / stride] += v * k0;
            if (m >= 1 && (m - 1) % stride == 0 && (m - 1) / stride < P)
                acc[(m - 1) / stride] += v * k1;
            if (m >= 2 && (m - 2) % stride == 0 && (m - 2) / stride < P)
                acc[(m - 2) / stride] += v * k2;
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < P; j++) f8_store(o + (size_t)j * c + i, acc[j]);
}

/* One run over the channels in whole vectors, in a function per stride and run length: the constant
 * version for a run whose three rows and all columns are inside the input, the general one
 * for the edges. */
typedef void dw_run_fn(const float *in, int w, int c, const float *wt, int y0, int x0, int ky0,
                       int ky1, float *o);
#define DW_RUN_FN(S, P)                                                                            \
    static void dw_run_##S##_##P(const float *in, int w, int c, const float *wt, int y0, int x0,   \
                                 int ky0, int ky1, float *o)                                       \
    {                                                                                              \
        int cols = (P - 1) * S + 3, m_lo = x0 < 0 ? -x0 : 0;                                       \
        int m_hi = x0 + cols > w ? w - x0 : cols;                                                  \
        if (ky0 == 0 && ky1 == 3 && m_lo == 0 && m_hi == cols)                                     \
            for (int i = 0; i + 8 <= c; i += 8)                                                    \
                dw_run(in, w, c, wt, y0, x0, S, 0, 3, 0, cols, P, i, o);                           \
        else                                                                                       \
            for (int i = 0; i + 8 <= c; i += 8)                                                    \
                dw_run(in, w, c, wt, y0, x0, S, ky0, ky1, m_lo, m_hi, P, i, o);                    \
    }
DW_RUN_FN(1, 8)
DW_RUN_FN(1, 4)
DW_RUN_FN(1, 2)
DW_RUN_FN(1, 1)
DW_RUN_FN(2, 8)
DW_RUN_FN(2, 4)
DW_RUN_FN(2, 2)
DW_RUN_FN(2, 1)
#undef DW_RUN_FN
/* [stride - 1][log2 P] */
static dw_run_fn *const dw_run_fns[2][4] = {
    {dw_run_1_1, dw_run_1_2, dw_run_1_4, dw_run_1_8},
    {dw_run_2_1, dw_run_2_2, dw_run_2_4, dw_run_2_8},
};

/* One pixel's channels [i, c) when c is not a multiple of 8, taps in the same order. */
static void dw_pixel_tail(const float *in, int w, int c, const float *wt, int y0, int x0, int ky0,
                          int ky1, int kx0, int kx1, int i, float *o)
{
    for (; i < c; i++) {
        float acc = 0;
        for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++)
                acc += in[((size_t)(y0 + ky) * w + x0 + kx) * c + i] * wt[(ky * 3 + kx) * c + i];
        o[i] = acc;
    }
}

void KNAME(dwconv3x3)(const float *in, const conv_geom *g, int stride, const float *w, float *out)
{
    int c = g->c, c8 = c / 8 * 8;
    for (int oy = 0; oy < g->oh; oy++) {
        int y0 = oy * stride - g->pt;
        int ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + 3 > g->h ? g->h - y0 : 3;
        float *o = out + (size_t)oy * g->ow * c;
        /* runs of 8, then 4, 2 and 1 for what is left of the row */
        for (int ox = 0, lg; ox < g->ow; ox += 1 << lg) {
            int left = g->ow - ox;
            lg = left >= 8 ? 3 : left >= 4 ? 2 : left >= 2 ? 1 : 0;
            dw_run_fns[stride - 1][lg](in, g->w, c, w, y0, ox * stride - g->pl, ky0, ky1,
                                       o + (size_t)ox * c);
        }
        for (int ox = 0; c8 < c && ox < g->ow; ox++) {
            int x0 = ox * stride - g->pl;
            int kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + 3 > g->w ? g->w - x0 : 3;
            dw_pixel_tail(in, g->w, c, w, y0, x0, ky0, ky1, kx0, kx1, c8, o + (size_t)ox * c);
        }
    }
}

/* The per-channel scratch of the next three kernels comes in as restrict parameters: GCC then
 * knows the arrays are distinct from each other and from the map, and interleaves two pixels
 * or rows per pass over the channels (unroll and jam), as it did when they were on the stack. */
static inline void row_stats(const float *x, int w, int c, int r_lo, int r_hi, float *stats,
                             float *restrict sum, float *restrict sq)
{
    /* Each row alone, in float, on data shifted by the row's first pixel (so sums of squares
     * do not cancel when the mean is large against the spread): a row is at most a few hundred
     * pixels, and gn_finish combines the rows in double. */
    for (int r = r_lo; r < r_hi; r++) {
        const float *row = x + (size_t)r * w * c, *pivot = row;
        for (int i = 0; i < c; i++) sum[i] = sq[i] = 0;
        for (int p = 0; p < w; p++) {
            const float *v = row + (size_t)p * c;
            for (int i = 0; i < c; i++) {
                float d = v[i] - pivot[i];
                sum[i] += d;
                sq[i] += d * d;
            }
        }
        float *mean = stats + (size_t)r * 2 * c, *m2 = mean + c;
        for (int i = 0; i < c; i++) {
            mean[i] = pivot[i] + sum[i] / w;
            m2[i] = sq[i] - sum[i] * sum[i] / w;
        }
    }
}

void KNAME(gn_row_stats)(const float *x, int w, int c, int r_lo, int r_hi, float *stats,
                         float *work)
{
    row_stats(x, w, c, r_lo, r_hi, stats, work, work + c);
}

static inline void finish(const float *stats, int h, int w, int c, int cpg, float eps,
                          const float *gamma, float *mean_c, float *scale, double *restrict mean,
                          double *restrict m2)
{
    /* Rows, then channels, combine exactly (Chan et al.): the spread of a set is its parts'
     * spreads plus their means' spread about the set's mean. */
    for (int i = 0; i < c; i++) mean[i] = m2[i] = 0;
    for (int r = 0; r < h; r++)
        for (int i = 0; i < c; i++) mean[i] += stats[(size_t)r * 2 * c + i];
    for (int i = 0; i < c; i++) mean[i] /= h;
    for (int r = 0; r < h; r++) {
        const float *rm = stats + (size_t)r * 2 * c, *rm2 = rm + c;
        for (int i = 0; i < c; i++)
            m2[i] += rm2[i] + (double)w * (rm[i] - mean[i]) * (rm[i] - mean[i]);
    }
    double hw = (double)h * w;
    for (int g = 0; g < c / cpg; g++) {
        double gmean = 0, gm2 = 0;
        for (int i = g * cpg; i < (g + 1) * cpg; i++) gmean += mean[i];
        gmean /= cpg;
        for (int i = g * cpg; i < (g + 1) * cpg; i++)
            gm2 += m2[i] + hw * (mean[i] - gmean) * (mean[i] - gmean);
        double rstd = 1.0 / sqrt(gm2 / (hw * cpg) + eps);
        for (int i = g * cpg; i < (g + 1) * cpg; i++) {
            mean_c[i] = (float)gmean;
            scale[i] = (float)(rstd * gamma[i]);
        }
    }
}

void KNAME(gn_finish)(const float *stats, int h, int w, int c, int cpg, float eps,
                      const float *gamma, float *mean_c, float *scale, double *work)
{
    finish(stats, h, w, c, cpg, eps, gamma, mean_c, scale, work, work + c);
}

void KNAME(gn_apply)(float *x, int pixels, int c, const float *mean_c, const float *scale,
                     const float *beta, act_kind act)
{
    /* y = (x - mean) * (rstd * gamma) + beta: subtracting the mean first keeps precision when
     * the mean is large against the spread (folding it into one shift would cancel badly). */
    float lo = act == ACT_NONE ? -INFINITY : 0.0f, hi = act == ACT_RELU6 ? 6.0f : INFINITY;
    for (int p = 0; p < pixels; p++) {
        float *v = x + (size_t)p * c;
        for (int i = 0; i < c; i++) v[i] = clamp((v[i] - mean_c[i]) * scale[i] + beta[i], lo, hi);
    }
}

void KNAME(maxpool)(const float *in, const conv_geom *g, int k, int stride, float *out)
{
    int c = g->c;
    for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++) {
            float *o = out + ((size_t)oy * g->ow + ox) * c;
            for (int i = 0; i < c; i++) o[i] = -FLT_MAX;
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * stride - g->pt + ky;
                if (iy < 0 || iy >= g->h) continue;
                for (int kx = 0; kx < k; kx++) {
                    int ix = ox * stride - g->pl + kx;
                    if (ix < 0 || ix >= g->w) continue;
                    const float *v = in + ((size_t)iy * g->w + ix) * c;
                    for (int i = 0; i < c; i++) o[i] = v[i] > o[i] ? v[i] : o[i];
                }
            }
        }
}

static inline void gap(const float *in, int hw, int c, float *out, double *restrict acc)
{
    memset(acc, 0, (size_t)c * sizeof *acc);
    for (int p = 0; p < hw; p++)
        for (int i = 0; i < c; i++) acc[i] += in[(size_t)p * c + i];
    for (int i = 0; i < c; i++) out[i] = (float)(acc[i] / hw);
}

void KNAME(gap)(const float *in, int hw, int c, float *out, double *work)
{
    gap(in, hw, c, out, work);
}

void KNAME(dense)(const float *in, const float *w, const float *b, int cin, int cout, float *out)
{
    /* Eight partial sums in a fixed order: the same bits whichever outputs a call covers. */
    int c8 = cin / 8 * 8;
    for (int j = 0; j < cout; j++) {
        const float *wr = w + (size_t)j * cin;
        f8 acc = {0};
        for (int i = 0; i < c8; i += 8) acc += f8_load(wr + i) * f8_load(in + i);
        float sum = b[j];
        for (int l = 0; l < 8; l++) sum += acc[l];
        for (int i = c8; i < cin; i++) sum += wr[i] * in[i];
        out[j] = sum;
    }
}

void KNAME(nchw_to_nhwc)(const float *in, int c, int h, int w, int y_lo, int y_hi, float *out)
{
    size_t hw = (size_t)h * w;
    for (size_t p = (size_t)y_lo * w; p < (size_t)y_hi * w; p++)
        for (int i = 0; i < c; i++) out[p * c + i] = in[(size_t)i * hw + p];
}
