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

/* The valid taps of one output pixel, channels [i, i+8) in one vector register. */
static inline void dw_pixel8(const float *in, int w, int c, const float *wt, int y0, int x0,
                             int ky0, int ky1, int kx0, int kx1, int i, float *o)
{
    f8 acc = {0};
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++)
            acc += f8_load(in + ((size_t)(y0 + ky) * w + x0 + kx) * c + i) *
                   f8_load(wt + (size_t)(ky * 3 + kx) * c + i);
    f8_store(o + i, acc);
}

/* Four horizontally adjacent output pixels whose three columns of taps are all inside the
 * input: each weight vector is loaded once for the four. Same sums in the same order as
 * dw_pixel8. */
static inline void dw_quad8(const float *in, int w, int c, const float *wt, int y0, int x0,
                            int stride, int ky0, int ky1, int i, float *o)
{
    f8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t step = (size_t)stride * c;
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = 0; kx < 3; kx++) {
            f8 k = f8_load(wt + (size_t)(ky * 3 + kx) * c + i);
            const float *p = in + ((size_t)(y0 + ky) * w + x0 + kx) * c + i;
            a0 += f8_load(p) * k;
            a1 += f8_load(p + step) * k;
            a2 += f8_load(p + 2 * step) * k;
            a3 += f8_load(p + 3 * step) * k;
        }
    f8_store(o + i, a0);
    f8_store(o + c + i, a1);
    f8_store(o + 2 * (size_t)c + i, a2);
    f8_store(o + 3 * (size_t)c + i, a3);
}

/* The same for channels [i, c) when c is not a multiple of 8. */
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
        for (int ox = 0; ox < g->ow;) {
            int x0 = ox * stride - g->pl;
            float *o = out + ((size_t)oy * g->ow + ox) * c;
            /* four interior pixels at once when the last of them still has all three columns */
            if (c8 == c && x0 >= 0 && ox + 3 < g->ow && x0 + 3 * stride + 2 < g->w) {
                for (int i = 0; i < c; i += 8)
                    dw_quad8(in, g->w, c, w, y0, x0, stride, ky0, ky1, i, o);
                ox += 4;
                continue;
            }
            int kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + 3 > g->w ? g->w - x0 : 3;
            for (int i = 0; i < c8; i += 8)
                dw_pixel8(in, g->w, c, w, y0, x0, ky0, ky1, kx0, kx1, i, o);
            if (c8 < c) dw_pixel_tail(in, g->w, c, w, y0, x0, ky0, ky1, kx0, kx1, c8, o);
            ox++;
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
