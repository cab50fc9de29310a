/* test_kernels.c - every engine kernel against a naive reference written here, on odd shapes:
 * channels not a multiple of 8 or 16, 1x1 spatial, stride 2 on odd sizes, TF-style
 * asymmetric padding. The references loop in the most obvious order, in double.
 *
 * Every kernel table the engine has is tested, each as a test of its own ("name/avx512",
 * "name/avx2", "name/blas"): a table this CPU cannot run reports SKIPPED. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/kernels/blas.h"
#include "engine/kernels/kernel_table.h"
#include "engine/limits.h"
#include "tests/unit/testutil.h"

/* The table a test was registered for (its cmocka state), or skip() when this CPU lacks it. */
static const kernel_table *table_or_skip(void **state)
{
    const kernel_table *kt = NULL;
    char err[ENGINE_ERR_BYTES];
    if (kernel_table_pick(*(const engine_gemm *)*state, &kt, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        skip();
    }
    return kt;
}

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

typedef struct {
    int h, w, cin, cout, k, stride, pt, pl, pb, pr;
} conv_case;

static void conv_geom_for(const conv_case *c, conv_geom *g)
{
    *g = (conv_geom){.h = c->h, .w = c->w, .c = c->cin, .pt = c->pt, .pl = c->pl};
    g->oh = (c->h + c->pt + c->pb - c->k) / c->stride + 1;
    g->ow = (c->w + c->pl + c->pr - c->k) / c->stride + 1;
}

static const conv_case conv_cases[] = {
    {9, 7, 3, 7, 3, 2, 1, 1, 1, 1},       {1, 1, 5, 9, 1, 1, 0, 0, 0, 0},
    {13, 11, 17, 33, 3, 1, 1, 1, 1, 1},   {15, 15, 3, 16, 7, 2, 3, 3, 3, 3},
    {7, 9, 12, 5, 3, 2, 1, 1, 1, 1},      {8, 6, 10, 12, 3, 2, 0, 0, 1, 1},  /* TF, even */
    {7, 5, 10, 12, 3, 2, 1, 1, 1, 1},     {11, 9, 24, 20, 1, 2, 0, 0, 0, 0}, /* 1x1 / 2 */
    {4, 4, 1, 1, 3, 1, 1, 1, 1, 1},       {9, 9, 528, 40, 3, 2, 1, 1, 1, 1}, /* in parts */
    {14, 14, 512, 160, 1, 2, 0, 0, 0, 0}, /* 49 rows, 320 KB: asks for the next panel */
};
#define N_CONV_CASES (sizeof conv_cases / sizeof conv_cases[0])

/* The 9x9x528 case's panels, 9 x 528 x 32 floats (608 KB), are taken in three parts of a
 * kernel row each (GEMM_PART_BYTES); the last case's weights, over GEMM_TILES_OUTER_BYTES, go
 * panel by panel, with few enough rows that the tiles ask for the next panel's lines
 * (NEXT_PANEL_MAX_ROWS in gemm_packed.c). */

/* Case t's input, weights in the layout model.c produces, and the reference output. */
typedef struct {
    conv_geom g;
    int kk, rows;
    float *in, *wg, *ref;
} conv_data;

static void conv_data_make(const conv_case *c, test_rng *r, conv_data *d)
{
    conv_geom_for(c, &d->g);
    d->kk = c->k * c->k * c->cin, d->rows = d->g.oh * d->g.ow;
    d->in = malloc(sizeof(float) * c->h * c->w * c->cin);
    d->wg = malloc(sizeof(float) * d->kk * c->cout);
    d->ref = malloc(sizeof(float) * d->rows * c->cout);
    float *wt = malloc(sizeof(float) * d->kk * c->cout);
    rng_fill(r, d->in, (size_t)c->h * c->w * c->cin, 1.0f);
    rng_fill(r, wt, (size_t)d->kk * c->cout, 0.5f);
    /* OIHW -> [(ky*k+kx)*cin+ci][oc], the layout model.c produces */
    for (int oc = 0; oc < c->cout; oc++)
        for (int ci = 0; ci < c->cin; ci++)
            for (int ky = 0; ky < c->k; ky++)
                for (int kx = 0; kx < c->k; kx++)
                    d->wg[((ky * c->k + kx) * c->cin + ci) * c->cout + oc] =
                        wt[((oc * c->cin + ci) * c->k + ky) * c->k + kx];
    ref_conv(d->in, c->h, c->w, c->cin, wt, c->cout, c->k, c->stride, c->pt, c->pl, d->g.oh,
             d->g.ow, d->ref);
    free(wt);
}

static void conv_data_free(conv_data *d)
{
    free(d->in), free(d->wg), free(d->ref);
}

/* The BLAS table's convolution: im2col rows and sgemm, whole and split as the team splits. */
static void test_conv_im2col_gemm(void **state)
{
    (void)state;
    test_rng r = {42};
    for (size_t t = 0; t < N_CONV_CASES; t++) {
        const conv_case *c = &conv_cases[t];
        conv_data d;
        conv_data_make(c, &r, &d);
        const conv_geom g = d.g;
        int kk = d.kk, rows = d.rows;
        float *in = d.in, *wg = d.wg, *ref = d.ref;
        float *col = malloc(sizeof(float) * rows * kk);
        float *out = malloc(sizeof(float) * rows * c->cout);
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
        free(col), free(out);
        conv_data_free(&d);
    }
}

/* A packed table's convolution straight from the input: against the reference, and the same
 * bits as im2col + its GEMM, split in two row ranges as the team splits it. */
static void test_conv_packed(void **state)
{
    const kernel_table *kt = table_or_skip(state);
    test_rng r = {42};
    for (size_t t = 0; t < N_CONV_CASES; t++) {
        const conv_case *c = &conv_cases[t];
        conv_data d;
        conv_data_make(c, &r, &d);
        int kk = d.kk, rows = d.rows, mid = rows / 2, np = (c->cout + 31) / 32;
        float *col = malloc(sizeof(float) * rows * kk);
        float *out = malloc(sizeof(float) * rows * c->cout);
        float *wp = malloc(sizeof(float) * gemm_packed_floats(kk, c->cout));
        float *zeros = calloc((size_t)c->k * c->cin, sizeof(float));
        float *bias = calloc((size_t)c->cout, sizeof(float));
        float *direct = malloc(sizeof(float) * rows * c->cout);
        gemm_epilogue e = {bias, NULL, -INFINITY, INFINITY, 0};
        assert_int_equal(kt->panel_cols, 32);
        kt->pack(d.wg, kk, c->cout, wp);
        im2col_rows(d.in, &d.g, c->k, c->stride, 0, rows, col);
        kt->gemm(col, rows, kk, wp, c->cout, 0, np, out, &e);
        kt->conv(d.in, &d.g, c->k, c->stride, 0, mid, zeros, wp, c->cout, 0, np, direct, &e);
        kt->conv(d.in, &d.g, c->k, c->stride, mid, rows, zeros, wp, c->cout, 0, np,
                 direct + (size_t)mid * c->cout, &e);
        /* float rounding grows with the length of the sum (4752 terms: 1.8e-5 measured) */
        double tol = 1e-5 * sqrt(kk / 256.0 + 1);
        expect_close(direct, d.ref, (size_t)rows * c->cout, tol, 1e-5, "conv_packed");
        assert_memory_equal(direct, out, sizeof(float) * rows * c->cout);
        free(wp), free(zeros), free(bias), free(direct), free(col), free(out);
        conv_data_free(&d);
    }
}

/* Winograd F(2x2) and F(4x4) against the exact sum on ragged maps (edge tiles cropped, 1x1
 * maps, sizes not multiples of the tile), with bias and ReLU6; and every split of the tiles
 * (as the thread team makes) gives the same bits as one call over all of them. The
 * tolerance scales with the length of the sum; errors of a wrong transform would be O(1). */
static void test_winograd(void **state)
{
    const kernel_table *kt = table_or_skip(state);
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
        assert_int_equal(kt->wino_pack(m, wg, cin, cout, kt->pack, u), 0);
        gemm_epilogue e = {bias, NULL, 0.0f, 6.0f, 0};
        wino_conv(kt, m, in, h, w, cin, u, cout, &e, 0, tiles, scratch, out);
        /* F(4x4)'s points +-2, +-1/2 round about 10x worse than F(2x2) (measured here at
         * most 7e-5 and 5e-6 on outputs of magnitude ~3) */
        double tol = (m == 4 ? 1e-5 : 1e-6) * sqrt(9.0 * cin);
        expect_close(out, ref, nout, tol, 0, "winograd");
        for (int mid = 0; mid <= tiles; mid += tiles > 3 ? tiles / 3 : 1) {
            memset(split_out, 0xff, sizeof(float) * nout);
            wino_conv(kt, m, in, h, w, cin, u, cout, &e, 0, mid, scratch, split_out);
            wino_conv(kt, m, in, h, w, cin, u, cout, &e, mid, tiles, scratch, split_out);
            assert_memory_equal(split_out, out, sizeof(float) * nout);
        }
        free(in), free(wt), free(wg), free(bias), free(u), free(scratch), free(out);
        free(split_out), free(ref);
    }
}

/* Row counts around the tile heights (AVX2 6, AVX-512 8), whose last rows run as two tiles of
 * about half when a short tile would follow a full one (7, 9, 11, 49 rows). */
static const int gemm_shapes[][3] = {{1, 1, 1},    {7, 5, 3},     {8, 64, 32},  {9, 27, 33},
                                     {11, 33, 48}, {49, 147, 64}, {17, 96, 24}, {100, 300, 70}};
#define N_GEMM_SHAPES (sizeof gemm_shapes / sizeof gemm_shapes[0])

/* Shape t's a [m][k] and b [k][n] (random, from r), b packed, and each table's c = a . b. */
static float *gemm_run(const kernel_table *kt, size_t t, int part, float **ref_out)
{
    int m = gemm_shapes[t][0], k = gemm_shapes[t][1], n = gemm_shapes[t][2], np = (n + 31) / 32;
    test_rng r = {99 + t};
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *bp = malloc(sizeof(float) * gemm_packed_floats(k, n));
    float *c = malloc(sizeof(float) * m * n), *zero = calloc((size_t)n, sizeof(float));
    rng_fill(&r, a, (size_t)m * k, 1.0f);
    rng_fill(&r, b, (size_t)k * n, 1.0f);
    kt->pack(b, k, n, bp);
    gemm_epilogue plain = {zero, NULL, -INFINITY, INFINITY, 0};
    /* in two panel ranges, as the team splits columns */
    kt->gemm(a, m, k, bp, n, 0, part ? np / 2 : np, c, &plain);
    if (part) kt->gemm(a, m, k, bp, n, np / 2, np, c, &plain);
    if (ref_out) {
        float *ref = *ref_out = malloc(sizeof(float) * m * n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int q = 0; q < k; q++) acc += (double)a[i * k + q] * b[q * n + j];
                ref[i * n + j] = (float)acc;
            }
    }
    free(a), free(b), free(bp), free(zero);
    return c;
}

/* A packed table's GEMM against the naive reference, on ragged shapes, and the properties the
 * engine relies on: a row's bits do not depend on how many rows the call has, and the fused
 * epilogue is bias_act's. */
static void test_gemm_packed(void **state)
{
    const kernel_table *kt = table_or_skip(state);
    for (size_t t = 0; t < N_GEMM_SHAPES; t++) {
        int m = gemm_shapes[t][0], k = gemm_shapes[t][1], n = gemm_shapes[t][2];
        int np = (n + 31) / 32;
        float *ref, *c = gemm_run(kt, t, 1, &ref);
        expect_close(c, ref, (size_t)m * n, 1e-5, 1e-5, "gemm_packed");
        test_rng r = {99 + t}; /* gemm_run's a and b again */
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
        float *bp = malloc(sizeof(float) * gemm_packed_floats(k, n)),
              *row = malloc(sizeof(float) * n);
        float *bias = malloc(sizeof(float) * n), *res = malloc(sizeof(float) * m * n);
        float *want = malloc(sizeof(float) * m * n), *fused = malloc(sizeof(float) * m * n);
        float *zero = calloc((size_t)n, sizeof(float));
        rng_fill(&r, a, (size_t)m * k, 1.0f);
        rng_fill(&r, b, (size_t)k * n, 1.0f);
        rng_fill(&r, bias, (size_t)n, 2.0f);
        rng_fill(&r, res, (size_t)m * n, 2.0f);
        kt->pack(b, k, n, bp);
        gemm_epilogue plain = {zero, NULL, -INFINITY, INFINITY, 0};
        for (int i = 0; i < m; i++) {
            kt->gemm(a + (size_t)i * k, 1, k, bp, n, 0, np, row, &plain);
            assert_memory_equal(row, c + (size_t)i * n, sizeof(float) * n);
        }
        /* the fused epilogue is bias_act, bit for bit */
        for (int mode = RES_ADD_THEN_ACT; mode <= RES_ACT_THEN_ADD; mode++) {
            gemm_epilogue e = {bias, res, 0.0f, 6.0f, mode == RES_ACT_THEN_ADD};
            memcpy(want, c, sizeof(float) * m * n);
            bias_act(want, bias, res, m, n, 0, n, ACT_RELU6, (res_mode)mode);
            kt->gemm(a, m, k, bp, n, 0, np, fused, &e);
            assert_memory_equal(fused, want, sizeof(float) * m * n);
        }
        free(zero), free(bias), free(res), free(want), free(fused), free(row);
        free(a), free(b), free(bp), free(c), free(ref);
    }
}

/* The AVX-512 and AVX2 GEMMs give the same bits (the same FMA sequence per element), so a
 * model's logits do not depend on which of the two a machine runs. Needs an AVX-512 CPU. */
static void test_gemm_widths_agree(void **state)
{
    static const engine_gemm wide = ENGINE_GEMM_AVX512, narrow = ENGINE_GEMM_AVX2;
    void *w = (void *)&wide, *nw = (void *)&narrow;
    const kernel_table *k512 = table_or_skip(&w), *k2 = table_or_skip(&nw);
    (void)state;
    for (size_t t = 0; t < N_GEMM_SHAPES; t++) {
        float *c512 = gemm_run(k512, t, 0, NULL), *c2 = gemm_run(k2, t, 1, NULL);
        assert_memory_equal(c512, c2, sizeof(float) * gemm_shapes[t][0] * gemm_shapes[t][2]);
        free(c512), free(c2);
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
    const kernel_table *kt = table_or_skip(state);
    static const conv_case cases[] = {
        {9, 7, 17, 17, 3, 2, 1, 1, 1, 1},  {8, 8, 24, 24, 3, 2, 0, 0, 1, 1}, /* TF even */
        {7, 9, 5, 5, 3, 2, 1, 1, 1, 1},    {1, 1, 3, 3, 3, 1, 1, 1, 1, 1},
        {6, 5, 40, 40, 3, 1, 1, 1, 1, 1},  {10, 13, 16, 16, 3, 1, 1, 1, 1, 1}, /* 4-pixel path */
        {9, 17, 24, 24, 3, 2, 0, 0, 1, 1}, {11, 19, 32, 32, 3, 2, 1, 1, 1, 1},
        {5, 23, 16, 16, 3, 1, 1, 1, 1, 1}, {6, 36, 8, 8, 3, 2, 1, 1, 1, 1}, /* runs 8, 4, 2, 1 */
        {7, 34, 12, 12, 3, 2, 0, 0, 1, 1}, {4, 31, 20, 20, 3, 2, 1, 1, 1, 1},
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
        kt->dwconv3x3(in, &g, c->stride, w9, out);
        expect_close(out, ref, (size_t)n_out, 1e-5, 1e-5, "dwconv3x3");
        /* each pixel alone (a map of one output pixel) has the bits it has in the whole map */
        for (int oy = 0; oy < g.oh; oy++)
            for (int ox = 0; ox < g.ow; ox++) {
                conv_geom one = g;
                one.oh = one.ow = 1;
                one.pt = g.pt - oy * c->stride, one.pl = g.pl - ox * c->stride;
                kt->dwconv3x3(in, &one, c->stride, w9, ref);
                assert_memory_equal(ref, out + ((size_t)oy * g.ow + ox) * C, sizeof(float) * C);
            }
        free(in), free(out), free(ref);
    }
}

static void test_groupnorm(void **state)
{
    const kernel_table *kt = table_or_skip(state);
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
            float mean_c[96], scale[96], fwork[2 * 96];
            double dwork[2 * 96];
            kt->gn_row_stats(got, w, c, 0, h / 2, stats, fwork);
            kt->gn_row_stats(got, w, c, h / 2, h, stats, fwork);
            kt->gn_finish(stats, h, w, c, cpg, 1e-5f, gm, mean_c, scale, dwork);
            kt->gn_apply(got, hw / 2, c, mean_c, scale, bt, (act_kind)act);
            kt->gn_apply(got + (size_t)hw / 2 * c, hw - hw / 2, c, mean_c, scale, bt,
                         (act_kind)act);
            expect_close(got, ref, n, 1e-5, 1e-5, "groupnorm");
            free(got);
        }
        free(x), free(ref), free(stats);
    }
}

static void test_maxpool_gap_dense(void **state)
{
    const kernel_table *kt = table_or_skip(state);
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
    kt->maxpool(in, &g, 3, 2, out);
    expect_close(out, ref, 5 * 4 * 6, 0, 0, "maxpool");

    float avg[6], avg_ref[6];
    for (int i = 0; i < 6; i++) {
        double s = 0;
        for (int p = 0; p < 63; p++) s += in[p * 6 + i];
        avg_ref[i] = (float)(s / 63);
    }
    double work[6];
    kt->gap(in, 63, 6, avg, work);
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
    kt->dense(x, w, b, CIN, COUT, y);
    expect_close(y, yref, COUT, 1e-6, 1e-6, "dense");
}

static void test_softmax(void **state)
{
    (void)state;
    float l[4] = {1000.0f, 1001.0f, -5.0f, 1000.5f}, p[4]; /* would overflow exp() naively */
    softmax(l, 4, p);
    double z = exp(-1.0) + 1 + exp(-1006.0) + exp(-0.5);
    float want[4] = {(float)(exp(-1.0) / z), (float)(1 / z), (float)(exp(-1006.0) / z),
                     (float)(exp(-0.5) / z)};
    expect_close(p, want, 4, 1e-7, 1e-6, "softmax");
}

static void test_layout(void **state)
{
    const kernel_table *kt = table_or_skip(state);

    float nchw[2 * 3 * 5], nhwc[2 * 3 * 5];
    for (int i = 0; i < 30; i++) nchw[i] = (float)i;
    kt->nchw_to_nhwc(nchw, 2, 3, 5, 0, 1, nhwc);
    kt->nchw_to_nhwc(nchw, 2, 3, 5, 1, 3, nhwc);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 5; x++)
            for (int c = 0; c < 2; c++)
                assert_true(nhwc[(y * 5 + x) * 2 + c] == nchw[c * 15 + y * 5 + x]);
}

/* A broken invariant (an 8x8 kernel, past KERNEL_MAX_SIDE) aborts the process naming the file,
 * line and expression, before the kernel touches memory: run in a child, its stderr read here. */
static void test_invariant_aborts(void **state)
{
    const kernel_table *kt = table_or_skip(state);
    int fds[2], status;
    char msg[512] = "";
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        conv_geom g = {.h = 8, .w = 8, .c = 1, .oh = 1, .ow = 1};
        float in[64] = {0}, zeros[8] = {0}, packed[64 * 32] = {0}, out[32], bias[1] = {0};
        gemm_epilogue e = {bias, NULL, -INFINITY, INFINITY, 0};
        kt->conv(in, &g, 8, 1, 0, 1, zeros, packed, 1, 0, 1, out, &e);
        _exit(0);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    msg[n > 0 ? n : 0] = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    assert_non_null(strstr(msg, "gemm_packed.c:"));
    assert_non_null(strstr(msg, "engine invariant failed: k >= 1 && k <= KERNEL_MAX_SIDE"));
}

static const engine_gemm gemm_avx512 = ENGINE_GEMM_AVX512, gemm_avx2 = ENGINE_GEMM_AVX2,
                         gemm_blas = ENGINE_GEMM_BLAS;

/* Test f with table t: the name says which ("test_dwconv/avx2"). */
#define WITH(f, t)                                                                                 \
    {                                                                                              \
#f "/" #t, f, NULL, NULL, (void *)&gemm_##t                                                \
    }
#define EVERY_TABLE(f) WITH(f, avx512), WITH(f, avx2), WITH(f, blas)
#define PACKED_TABLES(f) WITH(f, avx512), WITH(f, avx2)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_im2col_gemm),
        cmocka_unit_test(test_bias_act),
        cmocka_unit_test(test_softmax),
        PACKED_TABLES(test_conv_packed),
        PACKED_TABLES(test_gemm_packed),
        cmocka_unit_test(test_gemm_widths_agree),
        PACKED_TABLES(test_winograd),
        EVERY_TABLE(test_dwconv),
        EVERY_TABLE(test_groupnorm),
        EVERY_TABLE(test_maxpool_gap_dense),
        EVERY_TABLE(test_layout),
        PACKED_TABLES(test_invariant_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
