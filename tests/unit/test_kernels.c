/* test_kernels.c - every engine kernel against a naive reference written here, on odd shapes:
 * channels not a multiple of 8 or 16, 1x1 spatial, stride 2 on odd sizes, TF-style
 * asymmetric padding. The references loop in the most obvious order, in double. */
#include <string.h>

#include "engine/kernels/gemm_packed.h"
#include "engine/kernels/kernels.h"
#include "tests/unit/testutil.h"
#include "engine/kernels/winograd.h"

/* Reference convolution, NHWC input, OIHW weights, padding (pt, pl) before, output oh x ow. */
static void ref_conv(const float *in, int h, int w, int cin, const float *wt, int cout, int k,
                     int stride, int pt, int pl, int oh, int ow, float *out)
{
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int oc = 0; oc < cout; oc++) {
                double acc = 0;
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * stride - pt + ky, ix = ox * stride - pl + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            acc += (double)in[(iy * w + ix) * cin + ci] *
                                   wt[((oc * cin + ci) * k + ky) * k + kx];
                        }
                out[(oy * ow + ox) * cout + oc] = (float)acc;
            }
}

/* The packed-GEMM kernels this CPU runs, best first: on an AVX-512 CPU both widths, so the
 * AVX2 kernels are tested there too. Returns how many (0 without AVX2 and FMA). */
static int packed_isas(gemm_isa isas[2])
{
    int n = 0;
    if (gemm_isa_best() == GEMM_AVX512) isas[n++] = GEMM_AVX512;
    if (gemm_isa_best() >= GEMM_AVX2) isas[n++] = GEMM_AVX2;
    return n;
}

typedef struct {
    int h, w, cin, cout, k, stride, pt, pl, pb, pr;
} conv_case;

static void conv_geom_for(const conv_case *c, conv_geom *g)
{
    *g = (conv_geom){.h = c->h, .w = c->w, .c = c->cin, .pt = c->pt, .pl = c->pl};
    g->oh = (c->h + c->pt + c->pb - c->k) / c->stride + 1;
    g->ow = (c->w + c->pl + c->pr - c->k) / c->stride + 1;
}

static void test_conv_im2col_gemm(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        {9, 7, 3, 7, 3, 2, 1, 1, 1, 1},     {1, 1, 5, 9, 1, 1, 0, 0, 0, 0},
        {13, 11, 17, 33, 3, 1, 1, 1, 1, 1}, {15, 15, 3, 16, 7, 2, 3, 3, 3, 3},
        {7, 9, 12, 5, 3, 2, 1, 1, 1, 1},    {8, 6, 10, 12, 3, 2, 0, 0, 1, 1},  /* TF, even */
        {7, 5, 10, 12, 3, 2, 1, 1, 1, 1},   {11, 9, 24, 20, 1, 2, 0, 0, 0, 0}, /* 1x1 / 2 */
        {4, 4, 1, 1, 3, 1, 1, 1, 1, 1},
    };
    test_rng r = {42};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const conv_case *c = &cases[t];
        conv_geom g;
        conv_geom_for(c, &g);
        int kk = c->k * c->k * c->cin, rows = g.oh * g.ow;
        float *in = malloc(sizeof(float) * c->h * c->w * c->cin);
        float *wt = malloc(sizeof(float) * kk * c->cout),
              *wg = malloc(sizeof(float) * kk * c->cout);
        float *col = malloc(sizeof(float) * rows * kk);
        float *out = malloc(sizeof(float) * rows * c->cout),
              *ref = malloc(sizeof(float) * rows * c->cout);
        rng_fill(&r, in, (size_t)c->h * c->w * c->cin, 1.0f);
        rng_fill(&r, wt, (size_t)kk * c->cout, 0.5f);
        /* OIHW -> [(ky*k+kx)*cin+ci][oc], the layout model.c produces */
        for (int oc = 0; oc < c->cout; oc++)
            for (int ci = 0; ci < c->cin; ci++)
                for (int ky = 0; ky < c->k; ky++)
                    for (int kx = 0; kx < c->k; kx++)
                        wg[((ky * c->k + kx) * c->cin + ci) * c->cout + oc] =
                            wt[((oc * c->cin + ci) * c->k + ky) * c->k + kx];
        ref_conv(in, c->h, c->w, c->cin, wt, c->cout, c->k, c->stride, c->pt, c->pl, g.oh, g.ow,
                 ref);
        /* whole output at once, then in two row ranges as the thread team splits it */
        im2col_rows(in, &g, c->k, c->stride, 0, rows, col);
        gemm(col, wg, out, rows, c->cout, kk);
        expect_close(out, ref, (size_t)rows * c->cout, 1e-5, 1e-5, "conv");
        int mid = rows / 2;
        memset(out, 0, sizeof(float) * rows * c->cout);
        im2col_rows(in, &g, c->k, c->stride, 0, mid, col);
        gemm(col, wg, out, mid, c->cout, kk);
        im2col_rows(in, &g, c->k, c->stride, mid, rows, col);
        gemm(col, wg, out + (size_t)mid * c->cout, rows - mid, c->cout, kk);
        expect_close(out, ref, (size_t)rows * c->cout, 1e-5, 1e-5, "conv split");
        memset(out, 0, sizeof(float) * rows * c->cout);
        im2col_rows(in, &g, c->k, c->stride, 0, rows, col);
        gemm_cols(col, wg, out, rows, c->cout, 0, c->cout / 2, kk);
        gemm_cols(col, wg, out, rows, c->cout, c->cout / 2, c->cout, kk);
        expect_close(out, ref, (size_t)rows * c->cout, 1e-5, 1e-5, "conv column split");
        gemm_isa isas[2];
        for (int v = 0, nv = packed_isas(isas); v < nv; v++) {
            /* straight from the input: the same bits as im2col + the packed GEMM */
            gemm_isa isa = isas[v];
            float *wp = malloc(sizeof(float) * gemm_packed_floats(kk, c->cout));
            float *zeros = calloc((size_t)c->k * c->cin, sizeof(float));
            float *bias = calloc((size_t)c->cout, sizeof(float));
            float *direct = malloc(sizeof(float) * rows * c->cout);
            gemm_epilogue e = {bias, NULL, -INFINITY, INFINITY, 0};
            gemm_pack_b(wg, kk, c->cout, wp);
            im2col_rows(in, &g, c->k, c->stride, 0, rows, col);
            gemm_packed(col, rows, kk, wp, c->cout, 0, (c->cout + 31) / 32, out, &e, isa);
            conv_packed(in, &g, c->k, c->stride, 0, mid, zeros, wp, c->cout, 0, (c->cout + 31) / 32,
                        direct, &e, isa);
            conv_packed(in, &g, c->k, c->stride, mid, rows, zeros, wp, c->cout, 0,
                        (c->cout + 31) / 32, direct + (size_t)mid * c->cout, &e, isa);
            expect_close(direct, ref, (size_t)rows * c->cout, 1e-5, 1e-5, "conv_packed");
            assert_memory_equal(direct, out, sizeof(float) * rows * c->cout);
            free(wp), free(zeros), free(bias), free(direct);
        }
        free(in), free(wt), free(wg), free(col), free(out), free(ref);
    }
}

/* Winograd F(2x2) and F(4x4) against the exact sum on ragged maps (edge tiles cropped, 1x1
 * maps, sizes not multiples of the tile), with bias and ReLU6; and every split of the tiles
 * (as the thread team makes) gives the same bits as one call over all of them. The
 * tolerance scales with the length of the sum; errors of a wrong transform would be O(1). */
static void test_winograd(void **state)
{
    (void)state;
    gemm_isa isas[2];
    int nv = packed_isas(isas);
    if (!nv) skip();
    static const int cases[][5] = {
        /* m, h, w, cin, cout */
        {4, 13, 11, 16, 32}, {4, 1, 1, 16, 16}, {4, 8, 8, 32, 48},   {4, 5, 9, 48, 80},
        {2, 7, 7, 32, 16},   {2, 3, 2, 16, 16}, {2, 14, 14, 64, 48}, {2, 9, 4, 16, 112},
    };
    test_rng r = {7};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int m = cases[t][0], h = cases[t][1], w = cases[t][2], cin = cases[t][3],
            cout = cases[t][4], tiles = wino_tiles(m, h, w);
        size_t nin = (size_t)h * w * cin, nout = (size_t)h * w * cout, nw = (size_t)9 * cin * cout;
        float *in = malloc(sizeof(float) * nin), *wt = malloc(sizeof(float) * nw);
        float *wg = malloc(sizeof(float) * nw), *bias = malloc(sizeof(float) * cout);
        float *u = malloc(sizeof(float) * wino_weight_floats(m, cin, cout));
        float *scratch = malloc(sizeof(float) * wino_scratch_floats(m, tiles, cin, cout));
        float *out = malloc(sizeof(float) * nout), *split_out = malloc(sizeof(float) * nout);
        float *ref = malloc(sizeof(float) * nout);
        rng_fill(&r, in, nin, 1.0f);
        rng_fill(&r, wt, nw, 0.5f);
        rng_fill(&r, bias, (size_t)cout, 1.0f);
        for (int oc = 0; oc < cout; oc++)
            for (int ci = 0; ci < cin; ci++)
                for (int k = 0; k < 9; k++)
                    wg[((size_t)k * cin + ci) * cout + oc] = wt[((size_t)oc * cin + ci) * 9 + k];
        ref_conv(in, h, w, cin, wt, cout, 3, 1, 1, 1, h, w, ref);
        for (size_t i = 0; i < nout; i++) {
            float v = ref[i] + bias[i % cout];
            ref[i] = v < 0 ? 0 : v > 6 ? 6 : v;
        }
        assert_int_equal(wino_pack_weights(m, wg, cin, cout, u), 0);
        gemm_epilogue e = {bias, NULL, 0.0f, 6.0f, 0};
        for (int v = 0; v < nv; v++) {
            gemm_isa isa = isas[v];
            wino_conv(m, in, h, w, cin, u, cout, &e, 0, tiles, scratch, out, isa);
            /* F(4x4)'s points +-2, +-1/2 round about 10x worse than F(2x2) (measured here at
             * most 7e-5 and 5e-6 on outputs of magnitude ~3) */
            double tol = (m == 4 ? 1e-5 : 1e-6) * sqrt(9.0 * cin);
            expect_close(out, ref, nout, tol, 0, "winograd");
            for (int mid = 0; mid <= tiles; mid += tiles > 3 ? tiles / 3 : 1) {
                memset(split_out, 0xff, sizeof(float) * nout);
                wino_conv(m, in, h, w, cin, u, cout, &e, 0, mid, scratch, split_out, isa);
                wino_conv(m, in, h, w, cin, u, cout, &e, mid, tiles, scratch, split_out, isa);
                assert_memory_equal(split_out, out, sizeof(float) * nout);
            }
        }
        free(in), free(wt), free(wg), free(bias), free(u), free(scratch), free(out);
        free(split_out), free(ref);
    }
}

/* The packed GEMM against the naive reference, on ragged shapes, and the properties the engine
 * relies on: a row's bits do not depend on how many rows the call has, and (on an AVX-512 CPU,
 * which runs both) the AVX-512 and AVX2 kernels give the same bits. */
static void test_gemm_packed(void **state)
{
    (void)state;
    gemm_isa isas[2];
    int nv = packed_isas(isas);
    if (!nv) {
        fprintf(stderr, "test_gemm_packed: no AVX-512 or AVX2 on this CPU, BLAS path only\n");
        return;
    }
    static const int shapes[][3] = {{1, 1, 1},     {7, 5, 3},    {8, 64, 32},   {9, 27, 33},
                                    {49, 147, 64}, {17, 96, 24}, {100, 300, 70}};
    test_rng r = {99};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int m = shapes[t][0], k = shapes[t][1], n = shapes[t][2], panels = (n + 31) / 32;
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
        float *bp = malloc(sizeof(float) * gemm_packed_floats(k, n));
        float *c = malloc(sizeof(float) * m * n), *ref = malloc(sizeof(float) * m * n);
        float *first = malloc(sizeof(float) * m * n), *row = malloc(sizeof(float) * n);
        float *bias = malloc(sizeof(float) * n), *res = malloc(sizeof(float) * m * n);
        float *want = malloc(sizeof(float) * m * n), *fused = malloc(sizeof(float) * m * n);
        rng_fill(&r, a, (size_t)m * k, 1.0f);
        rng_fill(&r, b, (size_t)k * n, 1.0f);
        rng_fill(&r, bias, (size_t)n, 2.0f);
        rng_fill(&r, res, (size_t)m * n, 2.0f);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int q = 0; q < k; q++) acc += (double)a[i * k + q] * b[q * n + j];
                ref[i * n + j] = (float)acc;
            }
        gemm_pack_b(b, k, n, bp);
        float *zero = calloc((size_t)n, sizeof(float));
        gemm_epilogue plain = {zero, NULL, -INFINITY, INFINITY, 0};
        for (int v = 0; v < nv; v++) {
            gemm_isa isa = isas[v];
            /* in two panel ranges, as the team splits columns */
            gemm_packed(a, m, k, bp, n, 0, panels / 2, c, &plain, isa);
            gemm_packed(a, m, k, bp, n, panels / 2, panels, c, &plain, isa);
            expect_close(c, ref, (size_t)m * n, 1e-5, 1e-5, "gemm_packed");
            if (v == 0) memcpy(first, c, sizeof(float) * m * n);
            assert_memory_equal(c, first, sizeof(float) * m * n);
            for (int i = 0; i < m; i++) {
                gemm_packed(a + (size_t)i * k, 1, k, bp, n, 0, panels, row, &plain, isa);
                assert_memory_equal(row, c + (size_t)i * n, sizeof(float) * n);
            }
            /* the fused epilogue is bias_act, bit for bit */
            for (int mode = RES_ADD_THEN_ACT; mode <= RES_ACT_THEN_ADD; mode++) {
                gemm_epilogue e = {bias, res, 0.0f, 6.0f, mode == RES_ACT_THEN_ADD};
                memcpy(want, c, sizeof(float) * m * n);
                bias_act(want, bias, res, m, n, 0, n, ACT_RELU6, (res_mode)mode);
                gemm_packed(a, m, k, bp, n, 0, panels, fused, &e, isa);
                assert_memory_equal(fused, want, sizeof(float) * m * n);
            }
        }
        free(zero), free(bias), free(res), free(want), free(fused), free(first);
        free(a), free(b), free(bp), free(c), free(ref), free(row);
    }
}

static void test_bias_act(void **state)
{
    (void)state;
    test_rng r = {7};
    enum { R = 5, C = 13 };
    float x[R * C], b[C], res[R * C], got[R * C], want[R * C];
    rng_fill(&r, x, R * C, 8.0f);
    rng_fill(&r, b, C, 2.0f);
    rng_fill(&r, res, R * C, 4.0f);
    for (int act = ACT_NONE; act <= ACT_RELU6; act++)
        for (int mode = RES_NONE; mode <= RES_ACT_THEN_ADD; mode++) {
            for (int i = 0; i < R * C; i++) {
                double v = x[i] + b[i % C];
                if (mode == RES_ADD_THEN_ACT) v += res[i];
                if (act != ACT_NONE) v = v < 0 ? 0 : v;
                if (act == ACT_RELU6) v = v > 6 ? 6 : v;
                if (mode == RES_ACT_THEN_ADD) v += res[i];
                want[i] = (float)v;
            }
            memcpy(got, x, sizeof got);
            /* in two column blocks, as the thread team splits it */
            bias_act(got, b, mode == RES_NONE ? NULL : res, R, C, 0, 5, (act_kind)act,
                     (res_mode)mode);
            bias_act(got, b, mode == RES_NONE ? NULL : res, R, C, 5, C, (act_kind)act,
                     (res_mode)mode);
            expect_close(got, want, R * C, 1e-6, 1e-6, "bias_act");
        }
}

static void test_dwconv(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        {9, 7, 17, 17, 3, 2, 1, 1, 1, 1},  {8, 8, 24, 24, 3, 2, 0, 0, 1, 1}, /* TF even */
        {7, 9, 5, 5, 3, 2, 1, 1, 1, 1},    {1, 1, 3, 3, 3, 1, 1, 1, 1, 1},
        {6, 5, 40, 40, 3, 1, 1, 1, 1, 1},  {10, 13, 16, 16, 3, 1, 1, 1, 1, 1}, /* 4-pixel path */
        {9, 17, 24, 24, 3, 2, 0, 0, 1, 1}, {11, 19, 32, 32, 3, 2, 1, 1, 1, 1},
    };
    test_rng r = {3};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const conv_case *c = &cases[t];
        conv_geom g;
        conv_geom_for(c, &g);
        int C = c->cin, n_out = g.oh * g.ow * C;
        float *in = malloc(sizeof(float) * c->h * c->w * C), w9[9 * 40], wt[40 * 9];
        float *out = malloc(sizeof(float) * n_out), *ref = malloc(sizeof(float) * n_out);
        rng_fill(&r, in, (size_t)c->h * c->w * C, 1.0f);
        rng_fill(&r, wt, (size_t)C * 9, 1.0f); /* [c][3][3] as in the file */
        for (int i = 0; i < C; i++)
            for (int k = 0; k < 9; k++) w9[k * C + i] = wt[i * 9 + k];
        for (int oy = 0; oy < g.oh; oy++)
            for (int ox = 0; ox < g.ow; ox++)
                for (int i = 0; i < C; i++) {
                    double acc = 0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = oy * c->stride - c->pt + ky, ix = ox * c->stride - c->pl + kx;
                            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                            acc += (double)in[(iy * c->w + ix) * C + i] * wt[i * 9 + ky * 3 + kx];
                        }
                    ref[(oy * g.ow + ox) * C + i] = (float)acc;
                }
        dwconv3x3(in, &g, c->stride, w9, out);
        expect_close(out, ref, (size_t)n_out, 1e-5, 1e-5, "dwconv3x3");
        free(in), free(out), free(ref);
    }
}

static void test_groupnorm(void **state)
{
    (void)state;
    /* h, w, channels, groups, offset of the mean against a spread of 3 */
    static const int cases[][5] = {{7, 1, 48, 16, 1},  {1, 1, 64, 64, 1}, {5, 5, 96, 32, 1},
                                   {3, 1, 18, 6, 1},   {7, 7, 16, 16, 1}, {1, 9, 24, 4, 30},
                                   {12, 11, 32, 8, 30}};
    test_rng r = {11};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int h = cases[t][0], w = cases[t][1], hw = h * w, c = cases[t][2], groups = cases[t][3];
        int cpg = c / groups;
        size_t n = (size_t)hw * c;
        float *x = malloc(n * sizeof *x), *ref = malloc(n * sizeof *x), gm[96], bt[96];
        float *stats = malloc((size_t)h * 2 * c * sizeof *stats);
        rng_fill(&r, x, n, 3.0f);
        for (size_t i = 0; i < n; i++) x[i] += 1.5f * cases[t][4]; /* a mean far from zero */
        rng_fill(&r, gm, (size_t)c, 2.0f);
        rng_fill(&r, bt, (size_t)c, 1.0f);
        for (int act = ACT_NONE; act <= ACT_RELU6; act++) {
            for (int g = 0; g < groups; g++) {
                double s = 0, sq = 0, cnt = (double)hw * cpg;
                for (int p = 0; p < hw; p++)
                    for (int i = g * cpg; i < (g + 1) * cpg; i++) s += x[p * c + i];
                double mean = s / cnt;
                for (int p = 0; p < hw; p++)
                    for (int i = g * cpg; i < (g + 1) * cpg; i++)
                        sq += (x[p * c + i] - mean) * (x[p * c + i] - mean);
                double rstd = 1 / sqrt(sq / cnt + 1e-5);
                for (int p = 0; p < hw; p++)
                    for (int i = g * cpg; i < (g + 1) * cpg; i++) {
                        double v = (x[p * c + i] - mean) * rstd * gm[i] + bt[i];
                        if (act != ACT_NONE) v = v < 0 ? 0 : v;
                        if (act == ACT_RELU6) v = v > 6 ? 6 : v;
                        ref[p * c + i] = (float)v;
                    }
            }
            float *got = malloc(n * sizeof *got);
            memcpy(got, x, n * sizeof *got);
            /* rows summed and pixels normalised in two ranges each, as a thread team splits them */
            float mean_c[96], scale[96];
            gn_row_stats(got, w, c, 0, h / 2, stats);
            gn_row_stats(got, w, c, h / 2, h, stats);
            gn_finish(stats, h, w, c, cpg, 1e-5f, gm, mean_c, scale);
            gn_apply(got, hw / 2, c, mean_c, scale, bt, (act_kind)act);
            gn_apply(got + (size_t)hw / 2 * c, hw - hw / 2, c, mean_c, scale, bt, (act_kind)act);
            expect_close(got, ref, n, 1e-5, 1e-5, "groupnorm");
            free(got);
        }
        free(x), free(ref), free(stats);
    }
}

static void test_maxpool_gap_dense(void **state)
{
    (void)state;
    test_rng r = {5};
    conv_case c = {9, 7, 6, 6, 3, 2, 1, 1, 1, 1};
    conv_geom g;
    conv_geom_for(&c, &g);
    float in[9 * 7 * 6], out[5 * 4 * 6], ref[5 * 4 * 6];
    rng_fill(&r, in, sizeof in / sizeof in[0], 5.0f);
    for (int oy = 0; oy < g.oh; oy++)
        for (int ox = 0; ox < g.ow; ox++)
            for (int i = 0; i < 6; i++) {
                float m = -INFINITY;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
                        if (iy >= 0 && iy < 9 && ix >= 0 && ix < 7 && in[(iy * 7 + ix) * 6 + i] > m)
                            m = in[(iy * 7 + ix) * 6 + i];
                    }
                ref[(oy * g.ow + ox) * 6 + i] = m;
            }
    assert_int_equal(g.oh * g.ow * 6, 5 * 4 * 6);
    maxpool(in, &g, 3, 2, out);
    expect_close(out, ref, 5 * 4 * 6, 0, 0, "maxpool");

    float avg[6], avg_ref[6];
    for (int i = 0; i < 6; i++) {
        double s = 0;
        for (int p = 0; p < 63; p++) s += in[p * 6 + i];
        avg_ref[i] = (float)(s / 63);
    }
    gap_forward(in, 63, 6, avg);
    expect_close(avg, avg_ref, 6, 1e-6, 1e-6, "gap");

    enum { CIN = 37, COUT = 11 };
    float x[CIN], w[COUT * CIN], b[COUT], y[COUT], yref[COUT];
    rng_fill(&r, x, CIN, 1.0f);
    rng_fill(&r, w, COUT * CIN, 1.0f);
    rng_fill(&r, b, COUT, 1.0f);
    for (int j = 0; j < COUT; j++) {
        double s = b[j];
        for (int i = 0; i < CIN; i++) s += (double)w[j * CIN + i] * x[i];
        yref[j] = (float)s;
    }
    dense_forward(x, w, b, CIN, COUT, y);
    expect_close(y, yref, COUT, 1e-6, 1e-6, "dense");
}

static void test_softmax_and_layout(void **state)
{
    (void)state;
    float l[4] = {1000.0f, 1001.0f, -5.0f, 1000.5f}, p[4]; /* would overflow exp() naively */
    softmax(l, 4, p);
    double z = exp(-1.0) + 1 + exp(-1006.0) + exp(-0.5);
    float want[4] = {(float)(exp(-1.0) / z), (float)(1 / z), (float)(exp(-1006.0) / z),
                     (float)(exp(-0.5) / z)};
    expect_close(p, want, 4, 1e-7, 1e-6, "softmax");

    float nchw[2 * 3 * 5], nhwc[2 * 3 * 5];
    for (int i = 0; i < 30; i++) nchw[i] = (float)i;
    nchw_to_nhwc_rows(nchw, 2, 3, 5, 0, 1, nhwc);
    nchw_to_nhwc_rows(nchw, 2, 3, 5, 1, 3, nhwc);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 5; x++)
            for (int c = 0; c < 2; c++)
                assert_true(nhwc[(y * 5 + x) * 2 + c] == nchw[c * 15 + y * 5 + x]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_im2col_gemm),   cmocka_unit_test(test_gemm_packed),
        cmocka_unit_test(test_bias_act),           cmocka_unit_test(test_dwconv),
        cmocka_unit_test(test_groupnorm),          cmocka_unit_test(test_maxpool_gap_dense),
        cmocka_unit_test(test_softmax_and_layout), cmocka_unit_test(test_winograd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
