/* layout.c - NHWC or NCHW? The measurement behind the engine's choice (docs/engine.md).
 *
 * For representative layers of both families it times, single-threaded, the same work in
 * both layouts: a 1x1 convolution as one sgemm (NHWC: [HW x Cin].[Cin x Cout]; NCHW:
 * [Cout x Cin].[Cin x HW]), and a depthwise 3x3 + GroupNorm + ReLU6 (NHWC vectorises across
 * channels; NCHW across the pixels of a row). Each kernel is written plainly in both layouts,
 * with the same compiler flags as the engine. Prints one line per layer and layout.
 * Build and run: make bench-layout (or cc -O3 -march=x86-64-v3 -ffp-contract=fast ...).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float clamp6(float v)
{
    v = v < 0 ? 0 : v;
    return v > 6 ? 6 : v;
}

/* depthwise 3x3 stride 1 pad 1, NHWC */
static void dw_nhwc(const float *in, int h, int w, int c, const float *k, float *out)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float *o = out + ((size_t)y * w + x) * c;
            for (int i = 0; i < c; i++) o[i] = 0;
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    int iy = y + ky - 1, ix = x + kx - 1;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                    const float *v = in + ((size_t)iy * w + ix) * c, *kk = k + (ky * 3 + kx) * c;
                    for (int i = 0; i < c; i++) o[i] += v[i] * kk[i];
                }
        }
}

/* depthwise 3x3 stride 1 pad 1, NCHW */
static void dw_nchw(const float *in, int h, int w, int c, const float *k, float *out)
{
    for (int i = 0; i < c; i++) {
        const float *p = in + (size_t)i * h * w;
        float *o = out + (size_t)i * h * w;
        for (int j = 0; j < h * w; j++) o[j] = 0;
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                float kv = k[(ky * 3 + kx) * c + i];
                for (int y = 0; y < h; y++) {
                    int iy = y + ky - 1;
                    if (iy < 0 || iy >= h) continue;
                    int x0 = kx == 0 ? 1 : 0, x1 = kx == 2 ? w - 1 : w;
                    for (int x = x0; x < x1; x++) o[y * w + x] += p[iy * w + x + kx - 1] * kv;
                }
            }
    }
}

/* GroupNorm (16 groups) + ReLU6 in place, NHWC */
static void gn_nhwc(float *x, int hw, int c)
{
    int cpg = c / 16;
    double sum[c], sq[c];
    float mean[c], scale[c];
    for (int i = 0; i < c; i++) sum[i] = sq[i] = 0;
    for (int p = 0; p < hw; p++)
        for (int i = 0; i < c; i++) sum[i] += x[(size_t)p * c + i];
    for (int g = 0; g < 16; g++) {
        double s = 0;
        for (int i = g * cpg; i < (g + 1) * cpg; i++) s += sum[i];
        for (int i = g * cpg; i < (g + 1) * cpg; i++) mean[i] = (float)(s / ((double)hw * cpg));
    }
    for (int p = 0; p < hw; p++)
        for (int i = 0; i < c; i++) {
            double d = x[(size_t)p * c + i] - mean[i];
            sq[i] += d * d;
        }
    for (int g = 0; g < 16; g++) {
        double s = 0;
        for (int i = g * cpg; i < (g + 1) * cpg; i++) s += sq[i];
        for (int i = g * cpg; i < (g + 1) * cpg; i++)
            scale[i] = (float)(1 / sqrt(s / ((double)hw * cpg) + 1e-5));
    }
    for (int p = 0; p < hw; p++)
        for (int i = 0; i < c; i++)
            x[(size_t)p * c + i] = clamp6((x[(size_t)p * c + i] - mean[i]) * scale[i]);
}

/* GroupNorm (16 groups) + ReLU6 in place, NCHW: a group is cpg contiguous planes */
static void gn_nchw(float *x, int hw, int c)
{
    int cpg = c / 16;
    size_t n = (size_t)hw * cpg;
    for (int g = 0; g < 16; g++) {
        float *v = x + (size_t)g * n;
        double s = 0, sq = 0;
        for (size_t j = 0; j < n; j++) s += v[j];
        float mean = (float)(s / n);
        for (size_t j = 0; j < n; j++) sq += (double)(v[j] - mean) * (v[j] - mean);
        float scale = (float)(1 / sqrt(sq / n + 1e-5));
        for (size_t j = 0; j < n; j++) v[j] = clamp6((v[j] - mean) * scale);
    }
}

static void fill(float *p, size_t n)
{
    unsigned r = 1;
    for (size_t i = 0; i < n; i++) r = r * 1103515245u + 12345u, p[i] = (r >> 16) / 32768.0f - 1;
}

#define TIME(reps, stmt)                                                                           \
    ({                                                                                             \
        stmt;                                                                                      \
        double t0_ = now_s();                                                                      \
        for (int r_ = 0; r_ < (reps); r_++) stmt;                                                  \
        (now_s() - t0_) / (reps)*1e3;                                                              \
    })

int main(void)
{
    openblas_set_num_threads(1);
    /* 1x1 convs: HW, Cin, Cout (ResNet50 and MobileNetV2 layers) */
    static const int pw[][3] = {{3136, 64, 256}, {784, 512, 128}, {196, 1024, 256}, {49, 2048, 512},
                                {3136, 24, 144}, {784, 32, 192},  {196, 384, 64},   {49, 960, 160}};
    printf("%-26s %12s %12s\n", "1x1 conv (HW, Cin, Cout)", "NHWC ms", "NCHW ms");
    for (size_t i = 0; i < sizeof pw / sizeof pw[0]; i++) {
        int hw = pw[i][0], ci = pw[i][1], co = pw[i][2];
        float *x = malloc(sizeof(float) * hw * ci), *wt = malloc(sizeof(float) * ci * co);
        float *y = malloc(sizeof(float) * hw * co);
        fill(x, (size_t)hw * ci), fill(wt, (size_t)ci * co);
        int reps = (int)(2e9 / (2.0 * hw * ci * co)) + 3;
        double a = TIME(reps, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hw, co, ci, 1,
                                          x, ci, wt, co, 0, y, co));
        double b = TIME(reps, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, co, hw, ci, 1,
                                          wt, ci, x, hw, 0, y, hw));
        printf("%5d %5d %5d              %12.3f %12.3f\n", hw, ci, co, a, b);
        free(x), free(wt), free(y);
    }
    /* depthwise + GN + ReLU6: H=W, C (MobileNetV2 layers) */
    static const int dw[][2] = {{112, 32}, {56, 144}, {28, 192}, {14, 576}, {7, 960}};
    printf("%-26s %12s %12s\n", "dw3x3+GN+ReLU6 (HxW, C)", "NHWC ms", "NCHW ms");
    for (size_t i = 0; i < sizeof dw / sizeof dw[0]; i++) {
        int h = dw[i][0], c = dw[i][1];
        size_t n = (size_t)h * h * c;
        float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), k[9 * 960];
        fill(x, n), fill(k, (size_t)9 * c);
        int reps = (int)(2e8 / (20.0 * n)) + 3;
        double a = TIME(reps, (dw_nhwc(x, h, h, c, k, y), gn_nhwc(y, h * h, c)));
        double b = TIME(reps, (dw_nchw(x, h, h, c, k, y), gn_nchw(y, h * h, c)));
        printf("%3dx%-3d %5d                %12.3f %12.3f\n", h, h, c, a, b);
        free(x), free(y);
    }
    return 0;
}
